"""End to end: raw inputs -> tokens -> a generation schedule -> tokens -> decoded outputs.

`Pipeline` owns a model, the tokenizers of the modalities it touches (resolved on first use by
:class:`open4m.tokenizers.resolver.TokenizerSet`: overrides, the model's own folder, the registry)
and a schedule spec. It accepts natural inputs (an image file or PIL image for `rgb@224`, a caption string, typed
builders such as `Boxes`, `ColorPalette`, `Metadata`, or raw images for `tok_*` modalities when
their tokenizer is given), one sample or a batch of them (a list of values, or a stacked array),
tokenizes them, runs the `Sampler`, and decodes every generated modality with its tokenizer (images
as PIL, rendered for the eye: class maps coloured, depth through a colour map, feature maps by PCA;
the decoder's raw output and its natural-form arrays too; sequences as text and, where a codec
exists, parsed back into boxes / colours / metadata). Given a super-resolution model, every
`tok_*@224` result is then chained into its `@448` version. `open4m.pipeline("rgb->depth,caption",
model="EPFL-VILAB/4M-21_B")(image)` is the one-line form; `pipe.with_spec("rgb->normal")` runs
another spec on the same model and tokenizers without loading anything again.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.codecs import open_image, rgb_image
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..data.visualize import box_label
from .. import modalities
from ..atomic import atomic_write, save_image, write_text_atomic
from ..errors import ConfigError, DataError, Open4mError, OutputExists
from ..modalities import Kind, Modality
from ..model.fourm import FourM
from ..tokenizers.sequences import Box, BoxCodec, MetadataCodec, PaletteCodec, SamInstance
from ..tokenizers.divae import DiVAE
from ..tokenizers.resolver import TokenizerSet
from .dense import colorize_instances, generate_dense, merge_sam_instances, sam_instance_map
from .render import render
from .confidence import scored_boxes
from .sampler import Sampler, TokenScores
from .sampling import draw_tokens
from .schedules import GenerationSchedule, build_schedule, resolve_modality


# ------------------------------------------------------------------------------------------
# Typed builders for structured conditions
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Boxes:
    """Detections as a `det` condition: `Boxes([(xmin, ymin, xmax, ymax, "dog"), ...])`, corners in [0, 1]."""

    boxes: Sequence[Box | tuple]
    modality = "det"

    def to_text(self) -> str:
        return BoxCodec().to_text([b if isinstance(b, Box) else Box(*b) for b in self.boxes])


@dataclass(frozen=True)
class ColorPalette:
    """A `color_palette` condition: 1 to 7 (r, g, b) colours in 0..255."""

    colors: Sequence[Sequence[int]]
    modality = "color_palette"

    def to_text(self) -> str:
        return PaletteCodec().to_text(self.colors)


@dataclass(frozen=True)
class Metadata:
    """A `metadata` condition: `Metadata(brightness=120, n_humans=2)` (the field names of 4M's metadata)."""

    fields: dict[str, float] = field(default_factory=dict)
    modality = "metadata"

    def __init__(self, **fields: float) -> None:
        object.__setattr__(self, "fields", dict(fields))

    def to_text(self) -> str:
        return MetadataCodec().to_text(self.fields)


STRUCTURED = (Boxes, ColorPalette, Metadata)
# Super-resolution as in the 4M demo: MaskGIT, 8 cosine steps, temperature 1, guidance 2.5, top-p 0.9,
# targets in the order clip, depth, normal, semseg, rgb.
SR_DEFAULTS: dict[str, Any] = dict(schemes="maskgit", steps=8, token_schedules="cosine", temps=1.0, cfg=2.5, top_p=0.9)
SR_ORDER = ("tok_clip", "tok_depth", "tok_normal", "tok_semseg", "tok_rgb")
_PARSERS = {"det": BoxCodec(), "color_palette": PaletteCodec(), "metadata": MetadataCodec()}
SAM = "sam_instance"
#: The most elongated RGB input a pipeline squeezes into its square input (wider ones are refused: a 900x4 strip
#: squeezed to 224x224 would condition on stretched noise).
MAX_ASPECT = 8


# ------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------
@dataclass
class GenerationOutput:
    """What a pipeline call returns: token dict, decoded images and arrays, texts and parsed structures.

    Every field holds one entry per sample of the batch. For image-token targets, `decoded` is the
    tokenizer's raw decoder output (model form, e.g. `(B, C, H, W)` in [-1, 1] for RGB, class logits
    for segmentation), `arrays` the same in the tokenizer's natural form (`tokenizer.to_numpy`: uint8
    `(B, H, W, C)` images, int class-id maps, float maps), `images` rendered for the eye (PIL).
    """

    tokens: dict[str, dict[str, torch.Tensor]]
    inputs: dict[str, list] = field(default_factory=dict)  # input images as shown (resized)
    images: dict[str, list] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    vectors: dict[str, torch.Tensor] = field(default_factory=dict)  # decoded global embeddings (B, D)
    parsed: dict[str, list[Any]] = field(default_factory=dict)
    decoded: dict[str, torch.Tensor] = field(default_factory=dict)  # image-token targets: raw decoder output
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # image-token targets: natural form (to_numpy)
    scores: dict[str, list[TokenScores]] = field(default_factory=dict)  # sequence targets: per-token probabilities

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """One PNG per image output and sample, a side-by-side grid, `texts.json`, and `vectors.safetensors`
        for decoded global embeddings."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():  # mkdir would say only "[Errno 17] File exists"
            raise OutputExists(f"{out} is a file where the output folder should be; save to another folder "
                               "(the file is left as it is)")
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        panels = {**self.inputs, **self.images}
        for name, images in self.images.items():
            for i, img in enumerate(images):
                path = out / f"{_safe(name)}_{i}.png"
                save_image(img, path)
                written.append(path)
        if panels:
            grid = image_grid([list(col) for col in panels.values()])
            written.append(out / "grid.png")
            save_image(grid, written[-1])
        if self.texts:
            written.append(out / "texts.json")
            structured = {n: [_jsonable(p) for p in v] for n, v in self.parsed.items()}
            write_text_atomic(written[-1], json.dumps({"texts": self.texts, "parsed": structured}, indent=2))
        if self.vectors:
            from safetensors.torch import save_file

            written.append(out / "vectors.safetensors")
            tensors = {n: v.contiguous() for n, v in self.vectors.items()}
            atomic_write(written[-1], lambda tmp: save_file(tensors, str(tmp)), overwrite=True)
        return written


def _safe(name: str) -> str:
    return name.replace("@", "_")


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Box):
        out = {"xmin": value.xmin, "ymin": value.ymin, "xmax": value.xmax, "ymax": value.ymax, "class": value.class_name}
        if value.confidence is not None:
            out["confidence"] = round(value.confidence, 4)
            out["alternatives"] = [[name, round(p, 4)] for name, p in value.alternatives]
        return out
    if isinstance(value, SamInstance):
        return {"box": list(value.box), "codes": list(value.codes)}
    if isinstance(value, Exception):
        return f"unparsable: {value}"
    return value


def image_grid(columns: list[list], size: int = 224):
    """Columns of PIL images (one column per modality, one row per sample) -> one PIL image."""
    from PIL import Image

    rows = max(len(c) for c in columns)
    grid = Image.new("RGB", (size * len(columns), size * rows), "white")
    for x, col in enumerate(columns):
        for y, img in enumerate(col):
            grid.paste(img.convert("RGB").resize((size, size)), (x * size, y * size))
    return grid


def palette_swatch(colors: Sequence[Sequence[int]], size: int = 224):
    """A palette as vertical colour bars (how palette outputs are shown)."""
    from PIL import Image

    img = Image.new("RGB", (size, size), "white")
    width = max(1, math.ceil(size / max(1, len(colors))))
    for i, c in enumerate(colors):
        img.paste(tuple(int(v) for v in c), (i * width, 0, min(size, (i + 1) * width), size))
    return img


def draw_boxes(image, boxes: Sequence[Box]):
    """The image with each box outlined and labelled (boxes in [0, 1] coordinates), with the model's confidence
    where it has one. A generated box may come with its corners swapped (ymax above ymin): it is drawn
    between the coordinates it names."""
    from PIL import ImageDraw

    img = image.convert("RGB").copy()
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for b in boxes:
        (x0, x1), (y0, y1) = sorted((b.xmin * w, b.xmax * w)), sorted((b.ymin * h, b.ymax * h))
        xy = (x0, y0, x1, y1)
        draw.rectangle(xy, outline=(255, 0, 0), width=2)
        draw.text((xy[0] + 2, xy[1] + 1), box_label(b.class_name, b.confidence), fill=(255, 0, 0))
    return img


# ------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------
class Pipeline:
    """Raw inputs in, decoded outputs out, for one model and one schedule spec (see module docstring)."""

    def __init__(self, spec: str, model: FourM | str | os.PathLike, tokenizers: Mapping[str, Any] | None = None, *,
                 tokenizer_folder: str | os.PathLike | None = None, sr_model: FourM | str | os.PathLike | None = None,
                 sr_options: Mapping[str, Any] | None = None, draft_tokens: int = 8, compile: bool | str = False,
                 dense: int = 1,
                 preset: str = "auto", decode_steps: int | None = None, decode_scheduler: str | None = None,
                 dtype: torch.dtype | str | None = None, **schedule_options: Any) -> None:
        if isinstance(dense, bool) or not isinstance(dense, int) or dense < 1:
            raise ConfigError(f"dense={dense!r}: give the number of prompted passes per image (1 = one pass)")
        self.dtype = parse_dtype(dtype)
        self.model = _as_model(model, self.dtype)
        self.dense = dense
        self.decode_options = {k: v for k, v in dict(steps=decode_steps, scheduler=decode_scheduler).items()
                               if v is not None}
        self.sampler = Sampler(self.model, draft_tokens=draft_tokens, compile=compile)
        self.compile = compile
        self.image_size = self.model.config.image_size
        self.sr_model = _as_model(sr_model, self.dtype) if sr_model is not None else None
        self.sr_options = dict(SR_DEFAULTS, **(sr_options or {}))
        vocab = {name: mod.vocab_size for m in (self.model, self.sr_model) if m is not None
                 for name, mod in m.modality_info.items() if mod.vocab_size}
        self.tokenizers = TokenizerSet(tokenizers, folder=tokenizer_folder, origin=self.model.origin, vocab=vocab)
        self._set_schedule(spec, preset, schedule_options)

    def _set_schedule(self, spec: str, preset: str, options: Mapping[str, Any]) -> None:
        """Build and check the schedule (and the super-resolution one) of ``spec``."""
        self.preset = preset
        self.schedule: GenerationSchedule = build_schedule(
            spec, image_size=self.image_size, preset=preset,
            model_modalities=[*self.model.input_modalities, *self.model.output_modalities], **options)
        self.sr_schedule = self._sr_schedule(self.sr_options) if self.sr_model is not None else None
        sr_targets = self.sr_schedule.targets if self.sr_schedule else ()
        self.tokenizers.check_given([*self.schedule.conditions, *self.schedule.targets, *sr_targets])
        if self.dense > 1:
            if SAM not in self.schedule.targets:
                raise ConfigError(f"dense={self.dense} repeats the prompted passes of a {SAM!r} target; the spec "
                                 f"generates {list(self.schedule.targets)}")
            self.tokenizer(SAM)  # the passes are merged as text: fail now, not after generating

    def with_spec(self, spec: str, *, preset: str | None = None, **schedule_options: Any) -> "Pipeline":
        """The same model, sampler and tokenizers (nothing loaded again) with another spec and schedule options.

        `pipe.with_spec("rgb->normal", steps=4, temps=0.0)`: one pipeline per task over one loaded model.
        Options not given take their defaults (they are not carried over from this pipeline's spec).
        """
        other = copy.copy(self)
        other._set_schedule(spec, self.preset if preset is None else preset, schedule_options)
        return other

    def _sr_schedule(self, options: dict[str, Any]) -> GenerationSchedule:
        """Every generated or given `X@224` token grid whose `X@448` the SR model predicts, in the demo's order."""
        sr = self.sr_model
        base = [*self.schedule.conditions, *self.schedule.targets]
        conds = [n for n in base if n in sr.input_modalities]
        targets = [n.replace("@224", "@448") for n in base if n.endswith("@224") and n.startswith("tok_")]
        targets = [t for t in targets if t in sr.output_modalities]
        if not targets:
            raise ConfigError(f"the super-resolution model predicts none of the @448 versions of {base}; "
                             f"it outputs {sr.output_modalities}")
        targets.sort(key=lambda t: next((i for i, k in enumerate(SR_ORDER) if k in t), len(SR_ORDER)))
        return build_schedule(",".join(conds) + "->" + "->".join(targets), image_size=sr.config.image_size,
                              model_modalities=[*sr.input_modalities, *sr.output_modalities], **options)

    # -- tokenizers -------------------------------------------------------------------------------
    def tokenizer(self, name: str, *, required: bool = True):
        """The tokenizer of modality ``name`` (resolved and loaded on first use; see TokenizerSet)."""
        tok = self.tokenizers.get(name, required=required)
        if isinstance(tok, torch.nn.Module):
            device = self.model.mask_token.device
            if next(tok.parameters(), torch.empty(0, device=device)).device != device:
                tok.to(device)
        return tok

    # -- inputs -------------------------------------------------------------------------------
    def _pixels(self, mod: Modality, value: Any) -> tuple[torch.Tensor, list]:
        """One image or a batch (a list of images, a (B, H, W, 3) uint8 array) -> pixels (B, 3, S, S) and the shown images.

        A tensor is taken as already normalised ((3, S, S) or (B, 3, S, S)) and shows nothing.
        """
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point():  # 0..255 read as normalised pixels would be a picture of noise
                raise DataError(f"{mod.name}: a {value.dtype} tensor is not normalised pixels; pass the image itself "
                                "(a file, a PIL image or a uint8 (H, W, 3) array), or float pixels normalised as the "
                                "model's input")
            t = value if value.dim() == 4 else value[None]
            return t.float(), []
        if isinstance(value, np.ndarray) and value.ndim == 4:
            value = list(value)
        if not isinstance(value, (list, tuple)):
            value = [value]
        if not value:
            raise DataError(f"{mod.name}: an empty batch of images")
        pixels, shown = zip(*(self._rgb(mod, v) for v in value))
        return torch.cat(pixels), list(shown)

    def _rgb(self, mod: Modality, value: Any) -> tuple[torch.Tensor, Any]:
        """An image file, PIL image or uint8 array -> normalised pixels (1, 3, S, S) and the shown image.

        The normalisation is the modality's (ImageNet statistics unless it says otherwise), so a
        model trained on pixels in another range gets them as it saw them in training.
        """
        from PIL import Image

        if isinstance(value, (str, os.PathLike)):
            value = open_image(value, f"{mod.name}:")
        img = Image.fromarray(_image_array(mod.name, value)) if isinstance(value, np.ndarray) else value
        if not isinstance(img, Image.Image):
            raise DataError(f"{mod.name}: cannot read a {type(value).__name__} as an image; pass a file path, a PIL "
                            "image, a uint8 (H, W, 3) array, a list of them, or a normalised tensor")
        img = rgb_image(img)  # grey, palette, RGBA, 16-bit: 8-bit RGB as the photo looks
        if max(img.size) > MAX_ASPECT * min(img.size):
            raise DataError(f"{mod.name}: a {img.size[0]}x{img.size[1]} image is too far from square (over "
                            f"{MAX_ASPECT}:1) to squeeze into the model's square input; crop the part to use first")
        size = mod.image_size or self.image_size
        if img.size != (size, size):
            warnings.warn(f"rgb input of {img.size[0]}x{img.size[1]} resized to {size}x{size} (the model's input size)",
                          stacklevel=6)  # _rgb, _pixels genexpr, _pixels, tokenize, __call__
            img = img.resize((size, size), Image.BICUBIC)
        arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(mod.pixel_mean or IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(mod.pixel_std or IMAGENET_STD)[:, None, None]
        return ((arr - mean) / std)[None], img

    def tokenize(self, inputs: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, list]]:
        """Natural inputs -> condition tensors for the sampler (and the input images to show).

        Each value is one sample or a batch: a list of images, texts or structured values, or a
        stacked array; every condition must then hold the same number of samples.
        """
        conditions, shown = {}, {}
        unknown = [n for n in inputs if n not in self.schedule.conditions]
        if unknown:
            raise ConfigError(f"inputs {unknown} are not conditions of {self.schedule.conditions}; "
                             "name them in the spec ('rgb,caption->...')")
        missing = [n for n in self.schedule.conditions if n not in inputs]
        if missing:
            raise ConfigError(f"the spec conditions on {missing} but no value was given for them")
        for name, value in inputs.items():
            mod = self.model.modality_info[name]
            if mod.kind is Kind.PIXELS:
                conditions[name], images = self._pixels(mod, value)
                if images:
                    shown[name] = images
            elif mod.kind is Kind.SEQUENCE:
                conditions[name] = self._sequence(name, value)
            elif isinstance(value, torch.Tensor) and not value.is_floating_point():
                conditions[name] = value if value.dim() >= 2 else value[None]
            else:
                tokens = self.tokenizer(name).encode(_stacked(value))
                conditions[name] = tokens.reshape(tokens.shape[0], -1)
        return conditions, shown

    def _sequence(self, name: str, value: Any) -> torch.Tensor:
        """A text, a structured value, a list of either (a batch, right-padded) or token ids -> (B, L) ids."""
        batch = isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (str, *STRUCTURED)) for v in value)
        texts = [self._text(name, v) for v in (value if batch else [value])]
        if all(isinstance(t, str) for t in texts):
            tok = self.tokenizer(name)
            unknown = [w for t in texts for w in (tok.unknown_words(t) if hasattr(tok, "unknown_words") else [])]
            if unknown:  # else a word the model never saw is conditioned on as [UNK], without a word said
                shown = ", ".join(repr(w) for w in dict.fromkeys(unknown))
                warnings.warn(f"{name}: {shown} not in the text tokenizer's vocabulary; the model sees [UNK] in "
                              "their place (use words from its training captions)", stacklevel=4)
            ids = tok.encode(texts if batch else texts[0], add_eos=True)
        else:
            ids = torch.as_tensor(value, dtype=torch.long)
        return ids if ids.dim() == 2 else ids[None]

    def encode_texts(self, name: str, texts: Sequence[str], *, max_tokens: int | None = None) -> torch.Tensor:
        """Texts -> a condition batch of sequence ``name``: right-padded (B, L) ids, each row ending in [EOS].

        ``max_tokens`` cuts each text to at most that many tokens before its [EOS] (for texts longer than
        the model saw in training); without it a text that does not fit the modality is an error.
        """
        tok = self.tokenizer(name)
        rows = [tok.encode(t)[:max_tokens] if max_tokens is not None else tok.encode(t) for t in texts]
        out = torch.full((len(rows), max((len(r) for r in rows), default=0) + 1), tok.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
            out[i, len(r)] = tok.eos_id
        return out

    @staticmethod
    def _text(name: str, value: Any) -> Any:
        if isinstance(value, STRUCTURED):
            if value.modality != _sequence_role(name):
                raise DataError(f"a {type(value).__name__} is a {value.modality!r} condition, not {name!r}")
            return value.to_text()
        return value

    # -- outputs --------------------------------------------------------------------------------
    def detokenize(self, tokens: Mapping[str, Mapping[str, torch.Tensor]], shown: Mapping[str, list],
                   targets: Sequence[str], *, seed: int | None = 0, progress: bool = False,
                   scores: Mapping[str, list[TokenScores]] | None = None) -> GenerationOutput:
        """Decode every target with its tokenizer (diffusion decoders with ``decode_steps`` and ``seed``).

        `scores` (from `Sampler.generate`) are kept in the output and give generated boxes their
        `confidence` and `alternatives`.
        """
        scores = scores or {}
        out = GenerationOutput(tokens={k: dict(v) for k, v in tokens.items()}, inputs=dict(shown),
                               scores={n: list(v) for n, v in scores.items() if n in targets})
        for name in targets:
            entry, mod = tokens[name], modalities.get(name)
            tok = self.tokenizer(name, required=False)
            if mod.kind is Kind.IMAGE_TOKENS:
                if tok is None:
                    continue
                options = dict(self.decode_options, seed=seed, progress=progress) if isinstance(tok, DiVAE) else {}
                _put_decoded(out, name, tok, tok.decode(entry["tensor"], **options))
                continue
            if tok is None:
                continue
            rows = [t[~m].tolist() for t, m in zip(entry["tensor"], entry["input_mask"])]
            texts = [tok.decode(r) for r in rows]
            out.texts[name] = texts
            role = _sequence_role(name)
            parser = _PARSERS.get(role)
            if parser is not None:
                out.parsed[name] = [_parse(parser, t) for t in texts]
                if role == "det" and name in scores:
                    out.parsed[name] = [p if isinstance(p, Exception) else scored_boxes(p, s, tok)
                                        for p, s in zip(out.parsed[name], scores[name])]
                pictures = []
                if role == "color_palette":
                    pictures = [palette_swatch(p) for p in out.parsed[name] if not isinstance(p, Exception)]
                backdrop = next((shown[n] for n in shown if modalities.get(n).path == "rgb"), None)
                if role == "det" and backdrop:
                    pictures = [draw_boxes(backdrop[min(i, len(backdrop) - 1)], p)
                                for i, p in enumerate(out.parsed[name]) if not isinstance(p, Exception)]
                if pictures:  # generated text need not parse; then there is nothing to draw
                    out.images[name] = pictures
        return out

    def _inputs(self, inputs: Any, named: Mapping[str, Any]) -> dict[str, Any]:
        """A call's inputs as {condition: value}: a bare value for a one-condition spec, a dict, keywords.

        Keys may be the short names the spec itself accepts (`rgb` for `rgb@224`, `depth` for `tok_depth@224`):
        a pipeline built from ``"rgb->depth"`` must take ``{"rgb": photo}``, not only its registry name.
        """
        if not isinstance(inputs, Mapping):
            if inputs is None:
                inputs = {}
            elif len(self.schedule.conditions) == 1:
                inputs = {self.schedule.conditions[0]: inputs}
            else:
                raise ConfigError(f"the spec has conditions {self.schedule.conditions}: pass a dict of them")
        resolved: dict[str, Any] = {}
        given: dict[str, str] = {}
        for key, value in {**inputs, **named}.items():
            name = key
            if key not in self.schedule.conditions and isinstance(key, str):
                try:
                    name = resolve_modality(key.strip(), self.image_size, target=False).name
                except Open4mError:  # not a modality at all: `tokenize` names it among the unknown inputs
                    pass
                if name not in self.schedule.conditions:  # the error names the key as the caller wrote it
                    name = key
            if name in resolved:
                raise ConfigError(f"{given[name]!r} and {key!r} both give the condition {name}; give each condition once")
            resolved[name], given[name] = value, key
        return resolved

    # -- the call -------------------------------------------------------------------------------
    def __call__(self, inputs: Any = None, *, generator: torch.Generator | None = None, seed: int | None = None,
                 progress: bool = False, **named: Any) -> GenerationOutput:
        """`pipe(image)` when the spec has one condition, else `pipe({"rgb@224": img, "caption": "..."})`.

        A list of values (or a stacked array) per condition generates a batch: `pipe([img1, img2])`,
        `pipe({"rgb@224": [img1, img2], "caption": ["a dog", "a cat"]})`.
        """
        _check_seed(seed)
        inputs = self._inputs(inputs, named)
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.model.mask_token.device).manual_seed(seed)
        targets = list(self.schedule.targets) + list(self.sr_schedule.targets if self.sr_schedule else ())
        for name in targets:  # resolve (and fetch) the decoders now: a missing file fails before generating
            self.tokenizer(name, required=False)
        conditions, shown = self.tokenize(inputs)
        scores: dict[str, list[TokenScores]] = {}
        tokens = self.sampler.generate(conditions, self.schedule, generator=generator, progress=progress,
                                       batch_size=None if conditions else 1, scores=scores)
        targets = list(self.schedule.targets)
        extra_passes = self._dense_sam(tokens, generator) if self.dense > 1 and SAM in targets else None
        if self.sr_schedule is not None:
            sr_inputs = {n: tokens[n] for n in self.sr_schedule.conditions}
            high = Sampler(self.sr_model, compile=self.compile).generate(sr_inputs, self.sr_schedule,
                                                                         generator=generator, progress=progress)
            tokens = {**tokens, **{t: high[t] for t in self.sr_schedule.targets}}
            targets += self.sr_schedule.targets
        out = self.detokenize(tokens, shown, targets, seed=seed, progress=progress, scores=scores)
        if SAM in out.texts:
            self._sam_outputs(out, extra_passes)
        return out

    def estimate(self, inputs: Any = None, *, draws: int = 64, seed: int | None = 0, temperature: float = 1.0,
                 progress: bool = False, **named: Any) -> GenerationOutput:
        """The least-squares estimate of every image target from the inputs: its posterior mean under the model.

        A sample has to commit to what the inputs leave open (the colour of a floor no caption names); scored
        by squared error (PSNR) it loses to the mean of everything the model thinks possible. One pass per
        target gives the model's distribution of each token given the inputs (`Sampler.marginals`); `draws`
        token grids are drawn from them independently (seeded), each is decoded, and the decoder outputs are
        averaged (`decoded`, `arrays`, `images` as from a call; `tokens` holds the inputs only). Blurry where
        the inputs leave things open, by design: it is the estimate to score, not a picture to show. Inputs are
        given as to a call; sequence targets are refused (generate them with a call). Targets do not
        condition each other here: each is estimated from the inputs alone.
        """
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ConfigError(f"draws={draws!r}: give the number of token grids to average (>= 1; 64 is plenty)")
        _check_seed(seed)
        if self.sr_schedule is not None:
            raise ConfigError("an estimate is not refined by super-resolution: build the pipeline without sr_model "
                              "to estimate its targets")
        inputs = self._inputs(inputs, named)
        targets = list(self.schedule.targets)
        for name in targets:
            if modalities.get(name).kind is not Kind.IMAGE_TOKENS:
                raise ConfigError(f"{name!r} is not an image target: an estimate averages decoded images; generate "
                                  "sequences with a call instead")
            self.tokenizer(name)  # a missing decoder fails before the pass
        conditions, shown = self.tokenize(inputs)
        probs = self.sampler.marginals(conditions, self.schedule, temperature=temperature,
                                       batch_size=None if conditions else 1)
        generator = torch.Generator(device=self.model.mask_token.device)
        if seed is not None:
            generator.manual_seed(seed)
        out = GenerationOutput(tokens={n: dict(e) if isinstance(e, Mapping) else {"tensor": e}
                                       for n, e in conditions.items()}, inputs=dict(shown))
        for name in targets:
            tok = self.tokenizer(name)
            total = None
            for k in tqdm(range(draws), desc=f"estimating {name}", unit="draw", disable=not progress):
                ids = draw_tokens(probs[name], generator)[0]
                options = dict(self.decode_options, seed=None if seed is None else seed + k) \
                    if isinstance(tok, DiVAE) else {}
                decoded = tok.decode(ids, **options).float()
                total = decoded if total is None else total + decoded
            _put_decoded(out, name, tok, total / draws)
        return out

    # -- SAM instances ------------------------------------------------------------------------------
    def _dense_sam(self, tokens: Mapping[str, Any], generator: torch.Generator | None) -> list[list[str]]:
        """`dense - 1` more prompted `sam_instance` passes per image, on what its first pass saw."""
        steps = self.schedule.steps_for(SAM)
        before = [*self.schedule.conditions, *self.schedule.targets[:self.schedule.targets.index(SAM)]]
        text = self.tokenizer(SAM)
        passes = []
        for i in range(tokens[SAM]["tensor"].shape[0]):
            conditions = {n: {k: v[i:i + 1] for k, v in tokens[n].items()} for n in before}
            rows = generate_dense(self.sampler, conditions, steps[0], repeats=self.dense - 1, generator=generator)
            passes.append([text.decode(r) for r in rows])
        return passes

    def _sam_outputs(self, out: GenerationOutput, extra_passes: list[list[str]] | None) -> None:
        """Merged instances per image (every dense pass), and their painted map given a mask tokenizer."""
        per_image = [[t, *(extra_passes[i] if extra_passes else [])] for i, t in enumerate(out.texts[SAM])]
        mask_tok = self.tokenizer("sam_mask", required=False)
        out.parsed[SAM] = [merge_sam_instances(texts) for texts in per_image]
        if mask_tok is not None:
            out.images[SAM] = [colorize_instances(sam_instance_map(texts, mask_tok, self.image_size))
                               for texts in per_image]


def _check_seed(seed: Any) -> None:
    """A seed must be a whole number torch's generators take (signed 64 bits; `estimate` adds the draw index).

    Checked before anything runs: torch answered a float with 'manual_seed expected a long' and 2**70 with
    'Overflow when unpacking long long', from deep inside the call.
    """
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed={seed!r} is not a whole number; give an int such as 0 (or None for a fresh draw)")
    if not -2**63 <= seed < 2**63:
        raise ConfigError(f"seed={seed} is out of range; give a whole number from -2**63 to 2**63 - 1, e.g. 0")


def _put_decoded(out: GenerationOutput, name: str, tok: Any, decoded: torch.Tensor) -> None:
    """An image-token target's decoder output into `out`: raw, and as vectors or as arrays and pictures."""
    out.decoded[name] = decoded
    if tok.preprocessor.input == "vector":
        out.vectors[name] = torch.from_numpy(tok.to_numpy(decoded))
    else:
        out.arrays[name] = tok.to_numpy(decoded)
        out.images[name] = render(tok, decoded)


def _stacked(value: Any) -> Any:
    """A list of NumPy arrays or tensors (a batch of natural-form images) stacked; anything else as given."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        return np.stack(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return torch.stack(value)
    return value


def _image_array(label: str, arr: np.ndarray) -> np.ndarray:
    """A uint8 (H, W), (H, W, 3) or (H, W, 4) array (or 16-bit grey) as it is; anything else is refused with the fix.

    Pillow cannot read float or channels-first arrays (a `TypeError` about "(1, 1, 3), <f4"), and a float array's
    range (0..1 or 0..255) cannot be guessed: converting one silently would condition on the wrong picture.
    """
    shape = tuple(arr.shape)
    channels_first = arr.ndim == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4)
    if arr.ndim == 3 and shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.uint8 and not channels_first and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        return arr
    if arr.dtype == np.uint16 and arr.ndim == 2:  # 16-bit grey: `rgb_image` scales it by its range, as for a file
        return arr
    if channels_first:
        fix = f"it looks channels-first: pass arr.transpose(1, 2, 0), of shape ({shape[1]}, {shape[2]}, {shape[0]})"
    elif arr.dtype != np.uint8 and arr.ndim in (2, 3):
        fix = "convert it to uint8 pixels in 0..255 first (e.g. (arr * 255).round().astype(np.uint8) for 0..1 values)"
    else:
        fix = "pass an (H, W, 3) array, one image at a time or a list of them"
    raise DataError(f"{label}: a {arr.dtype} array of shape {shape} is not a uint8 (H, W, 3) image; {fix}")


def _sequence_role(name: str) -> str:
    """The structured role of a sequence modality: `det`, `color_palette`, `metadata` for the official
    names and for the world model's (`world_det`, `world_palette`, `world_metadata`, same codecs)."""
    from ..data.synthetic.world import SEQUENCE_MODALITIES

    return next((role for role, world_name in SEQUENCE_MODALITIES.items() if world_name == name), name)


def _parse(parser, text: str):
    try:
        return parser.read_generated(text)
    except ValueError as err:  # generated text need not be well formed; keep the reason
        return err


def pipeline(spec: str, *, model: FourM | str | os.PathLike, tokenizers: Mapping[str, Any] | None = None,
             **options: Any) -> Pipeline:
    """The one-line API: `pipeline("rgb->depth,caption", model="EPFL-VILAB/4M-21_B")(image)`.

    `model` is a FourM, a released name, a Hub id or a local file or folder; each modality's
    tokenizer is found on first use (the model's own folder, else the released one the registry
    names), so `tokenizers` is only needed to override one (`{"depth": "my_depth_tok/"}`).
    Unset decoding options follow the official demo for official modalities (`preset="auto"`).
    Pass `sr_model=` (a 4M-7-SR-style model) to super-resolve every `tok_*@224` output to `@448`,
    `decode_steps=`/`decode_scheduler=` for the diffusion decoders, `dtype="bf16"` to run the model
    in bfloat16 (`dtype="int8"`: int8 linear weights through torchao; `"int8-dynamic"`: int8 weights and
    activations, torch's kernels; both for CPUs, see `open4m.model.quantize`), `draft_tokens=0` to decode
    sequences one token per pass (no speculative guesses), `compile=True` to run MaskGIT / ROAR steps as one
    `torch.compile` graph (`open4m.generation.static_step`),
    and `dense=32` to generate `sam_instance` with 32 prompted passes per image, merged (painted into
    one instance map when a `sam_mask` tokenizer is available).
    """
    return Pipeline(spec, model, tokenizers, **options)


_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16}


INT8 = ("int8", "int8-dynamic")  # not torch dtypes to cast to: int8 linear layers (open4m.model.quantize)


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    """'bf16' / 'fp16' / 'fp32' (or a torch dtype) -> the torch dtype; 'int8' / 'int8-dynamic' stay strings;
    None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype).lower() in INT8:
        return str(dtype).lower()
    if str(dtype).lower() not in _DTYPES:
        raise ConfigError(f"dtype {dtype!r}: use bf16, fp16, fp32, int8 or int8-dynamic")
    return _DTYPES[str(dtype).lower()]


def _as_model(model: FourM | str | os.PathLike, dtype: torch.dtype | str | None) -> FourM:
    """A FourM as given, or loaded from a released name, Hub id or path; cast to ``dtype`` when one is asked for
    (int8: quantised in place, like a cast, after a float32 load)."""
    if dtype in INT8:
        from ..model.quantize import quantize_int8

        return quantize_int8(_as_model(model, torch.float32), dtype)
    if isinstance(model, (str, os.PathLike)):
        return FourM.from_pretrained(model, dtype=dtype)
    if not isinstance(model, FourM):
        raise TypeError(f"model must be a FourM or a name, Hub id or path, got {type(model).__name__}")
    return model.to(dtype) if dtype is not None else model


__all__ = ["Boxes", "ColorPalette", "Metadata", "GenerationOutput", "Pipeline", "pipeline", "image_grid",
           "palette_swatch", "draw_boxes", "parse_dtype"]
