"""One generation request, from what a person typed or picked to a `GenerationOutput`.

`open4m generate` (files and text on the command line) and `open4m serve` (widgets on a web page)
both turn "these conditions, these targets, these options" into a run of a `Pipeline`. They do it
through the functions here, so the page never drifts from the command line: the same short names
(`depth` -> `tok_depth@64`), the same spec, the same conversion of each condition value (a path, a
PIL image, an array, a text or a typed `Boxes` / `ColorPalette` / `Metadata`), the same schedule
options and the same seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data.codecs import open_image
from ..errors import ConfigError, DataError, NotFound
from ..modalities import Kind
from .schedules import resolve_modality

__all__ = ["GenerationRequest", "build_request", "checked_text", "condition_value", "open_image", "schedule_options"]

# The decoding options a request may set (the keyword arguments of `build_schedule` that users choose).
SCHEDULE_KEYS = ("schemes", "tokens", "steps", "token_schedules", "temps", "temp_schedules", "cfg", "cfg_schedules",
                 "cfg_grow_conditioning", "top_k", "top_p")


@dataclass
class GenerationRequest:
    """Resolved conditions (modality name -> value as given), targets in generation order, options, seed."""

    inputs: dict[str, Any]
    targets: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def spec(self) -> str:
        """The pipeline spec: conditions, then each target conditioned on everything before it."""
        return ",".join(self.inputs) + "->" + "->".join(self.targets)

    def run(self, pipe, *, progress: bool = False, label: str = "{name}", estimate: int | None = None,
            temperature: float = 1.0):
        """Run ``pipe`` (a `Pipeline` built for :attr:`spec`) on the converted inputs with the request's seed;
        with ``estimate`` the least-squares estimate of each image target from that many draws
        (`Pipeline.estimate`, its distributions at ``temperature``) instead of a sample.

        ``label`` names a condition in error messages (`"--input {name}="` on the command line).
        """
        values = {n: condition_value(n, v, pipe.model, label.format(name=n)) for n, v in self.inputs.items()}
        if estimate is not None:
            return pipe.estimate(values, draws=estimate, seed=self.seed, temperature=temperature, progress=progress)
        return pipe(values, seed=self.seed, progress=progress)


def schedule_options(**options: Any) -> dict[str, Any]:
    """The decoding options that were set (None means "the preset's default"); unknown keys are a bug."""
    unknown = sorted(set(options) - set(SCHEDULE_KEYS))
    if unknown:
        raise TypeError(f"not decoding options: {unknown}; choose from {SCHEDULE_KEYS}")
    return {k: v for k, v in options.items() if v is not None}


def build_request(model, inputs: Mapping[str, Any], targets: Sequence[str], *, seed: int = 0,
                  **options: Any) -> GenerationRequest:
    """Short or full modality names -> a `GenerationRequest` for ``model`` (a `FourM`).

    Names are resolved as `open4m generate` documents them (`rgb`, `depth`, `caption` or the registry
    names); an empty target list, or a modality both given and generated, is a `ConfigError`.
    """
    size = model.config.image_size
    resolved: dict[str, Any] = {}
    given: dict[str, str] = {}
    for n, v in inputs.items():
        name = resolve_modality(n.strip(), size, target=False).name
        if name in resolved:
            raise ConfigError(f"{given[name]!r} and {n!r} both give the condition {name}; give each condition once")
        resolved[name], given[name] = v, n
    if not resolved:
        raise ConfigError("no condition: give at least one input (rgb=photo.jpg, caption='a red car'; --input NAME=VALUE "
                          "on the command line); for unconditional generation run a Pipeline with a spec such as "
                          "'->tok_rgb@224'")
    names = [resolve_modality(t.strip(), size, target=True).name for t in targets if t.strip()]
    if not names:
        raise ConfigError("no target: name at least one modality to generate")
    both = [n for n in names if n in resolved]
    if both:
        raise ConfigError(f"{both} are both given and generated; a modality is either a condition or a target")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed {seed!r}: give a whole number")
    return GenerationRequest(resolved, names, schedule_options(**options), seed)


def checked_text(name: str, text: str, label: str) -> str:
    """A sequence condition typed as text, checked before any generation: not empty, and for the structured
    roles (boxes, palettes, metadata, poses, ...) written in the form their codec reads (``v0=...`` tokens)."""
    from ..tokenizers.sequences import CODECS
    from .pipeline import _sequence_role

    if not text.strip():
        raise DataError(f"{label}{text!r}: the text is empty; write the {name} text, or leave this condition out")
    role = _sequence_role(name)
    codec = CODECS.get(role)
    if codec is not None and role != "caption":
        try:
            parsed = codec.from_text(text)
        except DataError as err:
            example = f", e.g. {_TEXT_EXAMPLES[role]!r}" if role in _TEXT_EXAMPLES else ""
            raise DataError(f"{label}{text!r} is not {role} text ({err}); write it in the {role} codec's form"
                            f"{example} (open4m.tokenizers.sequences.CODECS[{role!r}].to_text makes one)") from None
        flipped = [i for i, b in enumerate(parsed, 1) if role == "det" and not (b.xmin < b.xmax and b.ymin < b.ymax)]
        if flipped:
            raise DataError(f"{label}{text!r}: box {flipped[0]} has no area (xmin >= xmax or ymin >= ymax); write "
                            "v0=xmin v1=ymin v2=xmax v3=ymax, the top-left corner first")
    return text


# Condition texts of the structured roles, as their codecs write them.
_TEXT_EXAMPLES = {"det": "v0=100 v1=200 v2=600 v3=900 car", "color_palette": "v1=2 v0=255 v0=0 v0=0 v0=0 v0=0 v0=255",
                  "metadata": "v1=10 v0=20 v1=11 v0=30"}


def condition_value(name: str, value: Any, model, label: str) -> Any:
    """A condition as a person gives it -> what `Pipeline` takes for modality ``name`` of ``model``.

    Sequences take text (or a typed `Boxes` / `ColorPalette` / `Metadata`). RGB pixels take an image
    file, a PIL image or a uint8 array. Token modalities (`tok_depth@64`, ...) take what their
    tokenizer encodes: an image file or a `.npy` array file, read into an array, or their token ids
    as an integer tensor. ``label`` names the input in error messages.
    """
    import numpy as np
    import torch

    kind = model.modality_info[name].kind
    if kind is Kind.SEQUENCE and isinstance(value, str):
        return checked_text(name, value, label)
    if kind is Kind.SEQUENCE or isinstance(value, torch.Tensor):  # tensors: pixels or token ids, ready
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.exists():
            raise NotFound(f"{label}{value}: no such file")
        if path.suffix == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, EOFError, OSError) as err:  # not an .npy file, an empty one, or one of Python objects
                raise DataError(f"{label}{value}: not a plain NumPy array file ({err or 'empty'}); write it with "
                                "numpy.save") from err
        value = open_image(path, label)
    if kind is Kind.PIXELS:
        return value
    return value if isinstance(value, np.ndarray) else np.asarray(value)
