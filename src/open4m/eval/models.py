"""The model under evaluation: one `Pipeline` per target spec over one loaded FourM.

The runner (`open4m.eval.runner`) asks a model for tasks (RGB -> depth, caption -> RGB, ...); this
module says which of the model's modalities serve a task, builds the `Pipeline` of each target spec
once (`rgb@64->tok_depth@64`, greedy, 4 steps) with `Pipeline.with_spec`, so the FourM and its
tokenizers are loaded once, and converts between the data's arrays (depth in metres, unit normals,
class ids, uint8 images and edges: what `open4m.data.synthetic.generate_sample` and `open4m synth`
folders hold) and each tokenizer's model form:

- a world model folder (with `world.json`, e.g. the shipped `open4m/assets/world64` or what
  `open4m demo --train` writes; the earlier layout too) uses the world's own conversions
  (`open4m.data.synthetic.world.to_model_form` / `from_model_form`), exactly what it was trained on;
- any other model (a released name, a Hub id, a model folder) uses each tokenizer's own input
  convention (its `preprocess`: `Preprocessor.to_model` / `to_numpy`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data.synthetic import world
from ..errors import ConfigError
from ..generation.pipeline import GenerationOutput, Pipeline
from ..modalities import Kind
from ..model import FourM
from ..tokenizers.sequences import Box
from ..weights import safetensors_files

__all__ = ["EvalModel", "WorldForms", "TokenizerForms", "SEQUENCE_ROLES"]

log = logging.getLogger(__name__)

# A sequence role (the world's key) -> the model modalities that play it, the world's first.
SEQUENCE_ROLES: dict[str, tuple[str, ...]] = {key: (name, key) for key, name in world.SEQUENCE_MODALITIES.items()}


class WorldForms:
    """A world model's conversions: data arrays <-> its tokenizers' model form (`open4m.data.synthetic.world`)."""

    def __init__(self, spec: world.WorldSpec) -> None:
        self.spec = spec

    def unsupported(self, base: str, tokenizer: Any) -> str | None:
        """Why ``base`` cannot be converted (None when it can)."""
        return None if base in world.IMAGE_MODALITIES else f"the world has no image modality {base!r}"

    def num_classes(self, tokenizer: Any) -> int:
        from ..data.synthetic import SEMSEG_CLASSES

        return len(SEMSEG_CLASSES)

    def to_model(self, base: str, arrays: Sequence[np.ndarray], tokenizer: Any) -> torch.Tensor:
        return torch.stack([world.to_model_form(base, a) for a in arrays])

    def from_model(self, base: str, decoded: torch.Tensor, tokenizer: Any) -> np.ndarray:
        return world.from_model_form(base, decoded)


class TokenizerForms:
    """Any model: each tokenizer's own convention (`tokenizer.preprocessor`), from and to the data's arrays."""

    def unsupported(self, base: str, tokenizer: Any) -> str | None:
        kind = tokenizer.preprocessor.input
        if base == "depth" and kind == "depth":
            return ("its depth tokenizer standardises depth per image, so it decodes no metres to score "
                    "(world models decode metric depth)")
        if base == "depth" and kind == "features":
            return ("its depth tokenizer declares no metric convention (input 'features'), so it decodes no metres "
                    "to score; a model trained on world data needs the world's world.json beside it")
        if base == "semseg" and kind != "class_map":
            return f"its {base} tokenizer decodes {kind}, not class maps"
        if kind not in ("image", "features", "depth", "class_map"):
            return f"its {base} tokenizer decodes {kind}, not an image"
        return None

    def num_classes(self, tokenizer: Any) -> int:
        return int(tokenizer.config.n_labels)

    def to_model(self, base: str, arrays: Sequence[np.ndarray], tokenizer: Any) -> torch.Tensor:
        pre = tokenizer.preprocessor
        out = []
        for a in arrays:
            a = np.asarray(a)
            if base == "normal":  # unit vectors in [-1, 1]
                a = (a.astype(np.float32) + 1) / 2 if pre.input == "image" else a.astype(np.float32).transpose(2, 0, 1)
            elif base == "canny_edge" and pre.input == "features":
                a = (a.astype(np.float32) / 127.5 - 1)[None]
            elif pre.input == "features" and a.ndim == 2:
                a = a.astype(np.float32)[None]
            out.append(pre.to_model(a))
        return torch.cat(out)

    def from_model(self, base: str, decoded: torch.Tensor, tokenizer: Any) -> np.ndarray:
        arr = tokenizer.to_numpy(decoded)
        kind = tokenizer.preprocessor.input
        if base == "normal":
            n = arr.astype(np.float32) / 127.5 - 1 if kind == "image" else arr.transpose(0, 2, 3, 1)
            return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
        if base == "canny_edge":
            edge = arr[..., 0] > 127 if kind == "image" else arr[:, 0] > 0
            return np.where(edge, 255, 0).astype(np.uint8)
        if base == "depth":
            return arr[:, 0] if arr.ndim == 4 else arr
        if base == "semseg":
            return arr.astype(np.uint8) if arr.max(initial=0) < 256 else arr
        if kind == "image" and arr.shape[-1] == 1:
            return arr[..., 0]
        return arr


class EvalModel:
    """One model under evaluation: its pipelines (one per target spec), its task modalities, its data forms.

    `EvalModel.load(model)` takes anything `Pipeline` takes (a FourM, a released name, a Hub id, a
    model file or folder), a world model folder, or a `Pipeline`; `None` is the world model shipped
    in the package.
    """

    def __init__(self, pipeline: Pipeline, forms: WorldForms | TokenizerForms, name: str = "") -> None:
        self.base, self.forms, self.name = pipeline, forms, name or str(pipeline.model.origin or "model")
        self.model: FourM = pipeline.model
        self._pipes: dict[tuple, Pipeline] = {}
        pixels = [n for n in self.model.input_modalities
                  if self.model.modality_info[n].kind is Kind.PIXELS and self.model.modality_info[n].path == "rgb"]
        self.rgb: str | None = pixels[0] if pixels else None
        self.image_size: int = (self.model.modality_info[self.rgb].image_size if self.rgb else None) \
            or self.model.config.image_size

    @property
    def spec(self) -> world.WorldSpec | None:
        """The world spec of a world model (None for other models)."""
        return self.forms.spec if isinstance(self.forms, WorldForms) else None

    @property
    def caption_order(self) -> str:
        """How the captions this model was trained on list their objects (`random` for models not of the world)."""
        return self.spec.caption_order if self.spec else "random"

    @property
    def caption_rgb_chain(self) -> tuple[str, ...]:
        """What caption -> RGB draws first, as the world model's spec declares (empty: RGB from the caption alone)."""
        return self.spec.caption_rgb_chain if self.spec else ()

    def caption_rgb_cfg(self, inputs: Mapping[str, Any]) -> dict[str, float] | None:
        """The guidance weights the world model's spec gives caption -> RGB (`caption_rgb_guidance`), keyed by the
        condition modalities of `inputs` they weight (None: no guidance)."""
        weights = self.spec.caption_rgb_guidance if self.spec else {}
        named = {(self.image_modality(k, output=False) if k in world.IMAGE_MODALITIES
                  else self.sequence_modality(k, output=False)): w for k, w in weights.items()}
        return {name: w for name, w in named.items() if name in inputs} or None

    @classmethod
    def load(cls, model: Any = None, *, tokenizers: str | os.PathLike | None = None) -> "EvalModel":
        """Load a model to evaluate; ``tokenizers`` is a (world) model folder whose tokenizers serve it instead of its own."""
        from ..sources.world import SHIPPED

        if isinstance(model, EvalModel):
            return model
        if model is None and tokenizers is None:
            model = SHIPPED
        world_dir = _world_folder(tokenizers if tokenizers is not None else model)
        if world_dir is not None:
            return cls._load_world(model, world_dir)
        if isinstance(model, Pipeline):
            pipe = model
        else:
            fourm = model if isinstance(model, FourM) else FourM.from_pretrained(model)
            pipe = Pipeline(_first_spec(fourm), fourm, tokenizer_folder=tokenizers)
        return cls(pipe, _forms_of(pipe), name=str(model) if isinstance(model, (str, os.PathLike)) else "")

    @classmethod
    def _load_world(cls, model: Any, folder: Path) -> "EvalModel":
        """A world model folder (any layout): its spec registered, its tokenizers loaded once."""
        from ..sources.world import is_legacy, load_tokenizers

        spec, toks, text_tok, _ = load_tokenizers(folder)  # a folder that is no world model: MissingModelError
        if isinstance(model, Pipeline):
            return cls(model, WorldForms(spec), name=str(folder))
        if isinstance(model, FourM):
            fourm = model
        else:
            path = Path(model) if model is not None else folder
            fourm = FourM.from_pretrained(path / "fourm.safetensors" if is_legacy(path) else path).float().eval()
        overrides: dict[str, Any] = {spec.tok(b): t for b, t in toks.items()}
        overrides.update({name: text_tok for name in spec.sequence_modalities})
        pipe = Pipeline(_first_spec(fourm), fourm, overrides)
        return cls(pipe, WorldForms(spec), name=str(folder))

    # -- which modality plays a role ------------------------------------------------------------------
    def image_modality(self, base: str, *, output: bool = True) -> str | None:
        """The model's token modality of image modality ``base`` (`depth` -> `tok_depth@64`), at its input size first."""
        names = self.model.output_modalities if output else self.model.input_modalities
        found = [n for n in names if n.split("@", 1)[0] == f"tok_{base}"
                 and self.model.modality_info[n].kind is Kind.IMAGE_TOKENS]
        found.sort(key=lambda n: self.model.modality_info[n].image_size != self.image_size)
        return found[0] if found else None

    def sequence_modality(self, key: str, *, output: bool = True) -> str | None:
        """The model's sequence modality for world key ``key`` (`det` -> `world_det` or `det`)."""
        names = self.model.output_modalities if output else self.model.input_modalities
        return next((n for n in SEQUENCE_ROLES.get(key, (key,)) if n in names), None)

    def tokenizer(self, name: str) -> Any:
        return self.base.tokenizer(name)

    def unsupported(self, base: str, name: str) -> str | None:
        """Why the data's ``base`` arrays cannot be converted to or from modality ``name`` (None when they can)."""
        tok = self.base.tokenizer(name, required=False)
        if tok is None:
            return f"no tokenizer decodes {name}"
        return self.forms.unsupported(base, tok)

    # -- generation -------------------------------------------------------------------------------------
    def pipeline(self, conditions: Sequence[str], target: str, *, steps: int = 4, temperature: float = 0.0,
                 scheme: str | None = None, cfg: Mapping[str, float] | None = None) -> Pipeline:
        """The pipeline of `conditions -> target` (built once): `steps` MaskGIT steps for image targets
        (at most one per token of the grid; `scheme="roar"` decodes them in random order instead),
        autoregressive for sequences; greedy at temperature 0; `cfg` weights conditions for classifier-free
        guidance ({condition: weight}, unnamed ones 1; None: no guidance)."""
        key = (tuple(conditions), target, steps, temperature, scheme, tuple(sorted((cfg or {}).items())))
        if key not in self._pipes:
            options: dict[str, Any] = {"temps": temperature}
            if cfg:
                options["cfg"] = dict(cfg)
            mod = self.model.modality_info[target]
            if mod.kind is Kind.IMAGE_TOKENS:
                grid = ((mod.image_size or self.model.config.image_size) // (mod.patch_size or 16)) ** 2
                options["steps"] = max(1, min(steps, grid))  # a step commits at least one token
                if scheme is not None:
                    options["schemes"] = scheme
            self._pipes[key] = self.base.with_spec(f"{','.join(conditions)}->{target}", **options)
        return self._pipes[key]

    def generate(self, inputs: dict[str, Any], target: str, *, steps: int = 4, temperature: float = 0.0,
                 seed: int = 0, scheme: str | None = None, cfg: Mapping[str, float] | None = None) -> GenerationOutput:
        """`inputs` (a batch per condition, in the order of the spec) -> the decoded `target`."""
        pipe = self.pipeline(list(inputs), target, steps=steps, temperature=temperature, scheme=scheme, cfg=cfg)
        return pipe(inputs, seed=seed)

    def image(self, base: str, inputs: dict[str, Any], **options: Any) -> np.ndarray:
        """Image modality ``base`` generated from ``inputs``, as the data's arrays."""
        target = self.image_modality(base)
        out = self.generate(inputs, target, **options)
        return self.forms.from_model(base, out.decoded[target], self.tokenizer(target))

    def image_estimate(self, base: str, inputs: dict[str, Any], *, draws: int = 64, seed: int = 0) -> np.ndarray:
        """The least-squares estimate of image modality ``base`` from ``inputs`` (`Pipeline.estimate`: the mean
        of `draws` grids drawn from the model's per-token distributions), as the data's arrays."""
        target = self.image_modality(base)
        out = self.pipeline(list(inputs), target, steps=8, temperature=1.0).estimate(inputs, draws=draws, seed=seed)
        return self.forms.from_model(base, out.decoded[target], self.tokenizer(target))

    def boxes(self, inputs: dict[str, Any], **options: Any) -> list[list[Box] | None]:
        """Detections generated from ``inputs``, with the model's `confidence` and runner-up classes
        (`open4m.generation.confidence`); None for a generation that does not parse as boxes."""
        target = self.sequence_modality("det")
        return [None if isinstance(p, Exception) else p for p in self.generate(inputs, target, **options).parsed[target]]

    def texts(self, key: str, inputs: dict[str, Any], **options: Any) -> list[str]:
        """Sequence role ``key`` (`caption`, `det`, ...) generated from ``inputs``, as texts."""
        target = self.sequence_modality(key)
        return [t.strip() for t in self.generate(inputs, target, **options).texts[target]]

    def image_tokens(self, base: str, arrays: Sequence[np.ndarray], name: str | None = None) -> torch.Tensor:
        """The data's arrays of ``base`` -> (B, N) token ids of modality ``name`` (default: its output modality)."""
        name = name or self.image_modality(base)
        tok = self.tokenizer(name)
        ids = tok.encode(self.forms.to_model(base, arrays, tok))
        return ids.reshape(len(arrays), -1)

    def round_trip(self, base: str, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The data's arrays through the tokenizer of ``base`` (encode, decode), as arrays again."""
        name = self.image_modality(base) or self.image_modality(base, output=False)
        tok = self.tokenizer(name)
        decoded = tok.decode(self.image_tokens(base, arrays, name))
        return self.forms.from_model(base, decoded, tok)

    def text_condition(self, key: str, texts: Sequence[str], *, output: bool = False) -> torch.Tensor:
        """Texts of sequence role ``key`` as a condition batch, each cut to what the model saw in training
        (`max_tokens - 2` tokens, room for [EOS] and a sentinel) and ended with [EOS]."""
        name = self.sequence_modality(key, output=output)
        limit = (self.model.modality_info[name].max_tokens or 0) - 2
        return self.base.encode_texts(name, texts, max_tokens=limit if limit > 0 else None)


def _world_folder(path: Any) -> Path | None:
    """A local folder holding `world.json` (a world model, in either layout), else None."""
    if isinstance(path, (str, os.PathLike)) and (Path(path) / "world.json").is_file():
        return Path(path)
    if isinstance(path, (str, os.PathLike)) and Path(path).is_dir() and not (Path(path) / "config.json").is_file() \
            and not safetensors_files(Path(path)):
        return Path(path)  # an empty or broken folder: the world loader says what is missing and how to make one
    return None


def _first_spec(model: FourM) -> str:
    """Some valid spec of a model (the pipelines of the tasks are derived from it)."""
    source = model.input_modalities[0]
    target = next((n for n in model.output_modalities if n != source), None)
    if target is None:
        raise ConfigError(f"the model has no output besides its input {source!r}; there is nothing to evaluate")
    return f"{source}->{target}"


def _forms_of(pipe: Pipeline) -> WorldForms | TokenizerForms:
    origin = pipe.model.origin
    folder = getattr(origin, "folder", None)
    if folder is not None and (Path(folder) / "world.json").is_file():
        return WorldForms(world.read_world_json(folder)[1])
    return TokenizerForms()
