"""The modality registry: the single source of truth every other module reads.

A modality is plain data (a frozen dataclass), never a module factory: the model, the data
pipeline and the sampler each derive what they need from these fields. The built-in entries
reproduce the official 4M-7 / 4M-21 registry exactly (names, vocabularies, token layouts and
ids), which is what lets released checkpoints load. Users add their own with :func:`register`.
It also holds the facts of the shared WordPiece vocabulary (the fixed ids of [PAD], [EOS], the
sentinels, value tokens and class names; :class:`SpecialTokens`), defined here once.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import numbers
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Mapping

from .errors import ConfigError, UnknownNameError


class Kind(str, Enum):
    """How a modality reaches (or does not reach) the FourM model."""

    PIXELS = "pixels"  # raw image patches, encoder input only (rgb@224)
    IMAGE_TOKENS = "image_tokens"  # a grid of VQ tokens (tok_*)
    SEQUENCE = "sequence"  # WordPiece token ids (caption, det, metadata, ...)
    SEQUENCE_EMBEDDING = "sequence_embedding"  # continuous vectors per position (t5_caption)
    RAW_IMAGE = "raw_image"  # image-like data that only tokenizers see (depth, normal, ...)
    FEATURE_MAP = "feature_map"  # a network's features that a VQ tokenizer turns into tok_*

    @property
    def official_type(self) -> str:
        """The `type` string the official registry uses for this kind."""
        return {
            Kind.PIXELS: "img",
            Kind.IMAGE_TOKENS: "img",
            Kind.RAW_IMAGE: "img",
            Kind.SEQUENCE: "seq",
            Kind.SEQUENCE_EMBEDDING: "seq_emb",
            Kind.FEATURE_MAP: "feature_map",
        }[self]


def modality_id(name: str) -> int:
    """The official modality id: sha256 of the name modulo 2**15 (tags tokens inside the model)."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % 2**15


@dataclass(frozen=True)
class Modality:
    """One modality: what it is, how it is tokenized, how the model embeds it.

    `image_size`/`patch_size` give the token grid of image-like modalities; `max_tokens` is the
    longest token sequence of sequence modalities (including [EOS] and a sentinel), and
    `embedding_max_length` the number of positions the model's embedding tables hold (the two
    differ for the official `human_poses`). `image_size=None` means "the model's image size".
    """

    name: str
    kind: Kind
    vocab_size: int | None = None
    max_tokens: int | None = None
    image_size: int | None = None
    patch_size: int | None = None
    num_channels: int | None = None
    encoder: bool = False
    decoder: bool = False
    sincos_pos_emb: bool = True
    embedding_max_length: int | None = None
    shares_vocab_with: tuple[str, ...] = ()
    orig_emb_dim: int | None = None
    num_labels: int | None = None
    path: str | None = None
    pretokenized: bool = False
    tokenizer: str | None = None
    description: str = ""
    pixel_mean: tuple[float, ...] | None = None  # pixels: per-channel normalisation (None: ImageNet's, as officially)
    pixel_std: tuple[float, ...] | None = None
    id: int = field(default=-1)

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ConfigError(f"modality name {self.name!r} must be non-empty without spaces")
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "shares_vocab_with", tuple(self.shares_vocab_with))
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.id == -1:
            object.__setattr__(self, "id", modality_id(self.name))
        for size in ("image_size", "patch_size", "max_tokens", "num_channels"):
            value = getattr(self, size)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0):
                raise ConfigError(f"modality {self.name!r}: {size}={value!r}; give a whole number > 0 (or leave it out)")
        if self.image_size and self.patch_size and self.image_size % self.patch_size:
            raise ConfigError(f"modality {self.name!r}: image size {self.image_size} is not a multiple of its patch "
                              f"size {self.patch_size}; choose sizes whose ratio is whole")
        if self.kind in (Kind.IMAGE_TOKENS, Kind.SEQUENCE) and (self.encoder or self.decoder):
            if not self.vocab_size or self.vocab_size <= 0:
                raise ConfigError(f"modality {self.name!r}: a {self.kind.value} modality needs vocab_size > 0")
        if self.kind in (Kind.SEQUENCE, Kind.SEQUENCE_EMBEDDING) and not self.max_tokens:
            raise ConfigError(f"modality {self.name!r}: a {self.kind.value} modality needs max_tokens")
        if self.kind in (Kind.PIXELS, Kind.IMAGE_TOKENS) and not self.patch_size:
            raise ConfigError(f"modality {self.name!r}: an image-like modality needs patch_size")
        if self.kind is Kind.PIXELS and self.decoder:
            raise ConfigError(f"modality {self.name!r}: raw pixels can be an input only (decoder=False)")
        if self.kind is Kind.SEQUENCE_EMBEDDING and self.decoder:
            raise ConfigError(f"modality {self.name!r}: sequence embeddings can be an input only")

    # -- derived facts -------------------------------------------------------------------
    @property
    def is_image_like(self) -> bool:
        """Tokens laid out on a 2D grid (pixels patches or VQ tokens)."""
        return self.kind in (Kind.PIXELS, Kind.IMAGE_TOKENS)

    @property
    def is_sequence(self) -> bool:
        """Token sequences that the decoder predicts causally (and span masking corrupts)."""
        return self.kind in (Kind.SEQUENCE, Kind.SEQUENCE_EMBEDDING)

    @property
    def base_name(self) -> str:
        """The name without its `@resolution` suffix; transforms and tokenizers are keyed by it."""
        return self.name.split("@", 1)[0]

    @property
    def resolution(self) -> int | None:
        """The `@N` suffix as an int, if present."""
        if "@" in self.name:
            tail = self.name.split("@", 1)[1]
            return int(tail) if tail.isdigit() else None
        return None

    def grid_size(self, default_image_size: int = 224) -> tuple[int, int]:
        """Token grid (rows, cols) of an image-like modality at its (or the model's) resolution."""
        if not self.is_image_like:
            raise ConfigError(f"modality {self.name!r} is a {self.kind.value}, it has no token grid")
        size = self.image_size or default_image_size
        if size % self.patch_size:
            raise ConfigError(
                f"modality {self.name!r}: image size {size} is not a multiple of its patch size {self.patch_size}"
            )
        n = size // self.patch_size
        return n, n

    def num_tokens(self, default_image_size: int = 224) -> int:
        """How many tokens the model sees for this modality at most."""
        if self.is_image_like:
            h, w = self.grid_size(default_image_size)
            return h * w
        if self.max_tokens is None:
            raise ConfigError(f"modality {self.name!r} ({self.kind.value}) is not seen by the model")
        return self.max_tokens

    @property
    def positions(self) -> int | None:
        """Positions in the sequence embedding tables (official: the embedding's max_length)."""
        return self.embedding_max_length or self.max_tokens


_REGISTRY: dict[str, Modality] = {}


class UnknownModalityError(UnknownNameError):
    """Raised for a modality name that is not registered; the message suggests the fix."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


def register(modality: Modality, *, overwrite: bool = False) -> Modality:
    """Add a modality to the registry (how users bring their own data to 4M).

    Re-registering an identical entry is a no-op; a different entry under a taken name needs
    `overwrite=True`, so a typo can never silently replace an official modality.
    """
    existing = _REGISTRY.get(modality.name)
    if existing is not None and existing != modality and not overwrite:
        raise ConfigError(
            f"modality {modality.name!r} is already registered with different fields; "
            "pass overwrite=True to replace it or pick another name"
        )
    for other in _REGISTRY.values():
        if other.name != modality.name and other.id == modality.id:
            raise ConfigError(f"modality id {modality.id} of {modality.name!r} collides with {other.name!r}; rename it")
    _REGISTRY[modality.name] = modality
    return modality


def unregister(name: str) -> None:
    """Remove a user modality (tests and notebooks that register temporary ones)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Modality:
    """Look a modality up by name, suggesting the closest names when it is unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModalityError(
            f"unknown modality {name!r}.{hint} Register new modalities with open4m.modalities.register(Modality(...))."
        ) from None


def to_spec(modality: Modality) -> dict:
    """A JSON-able description of a modality (what self-describing checkpoints store)."""
    spec = dataclasses.asdict(modality)
    spec["kind"] = modality.kind.value
    for name in ("shares_vocab_with", "pixel_mean", "pixel_std"):  # JSON has lists, not tuples
        if spec[name] is not None:
            spec[name] = list(spec[name])
    return spec


def check_types(cls: type, values: Mapping, what: str) -> None:
    """Each value of `values` (fields of the dataclass `cls`, read from a file) has its field's type: an int
    is an int (not a bool, not a string), a float is finite, a tuple or list holds the declared items, an
    enum is one of its values. Otherwise a `ConfigError` naming the field — before the dataclass runs on a
    value it was never meant to see."""
    import math
    import typing

    def ok(tp: object, v: object) -> bool:
        args = typing.get_args(tp)
        if type(None) in args:
            return v is None or ok(next(a for a in args if a is not type(None)), v)
        origin = typing.get_origin(tp)
        if origin in (tuple, list):
            return isinstance(v, (list, tuple)) and all(ok(args[0], x) for x in v)
        if tp is bool:
            return isinstance(v, bool)
        if tp is int:
            return isinstance(v, int) and not isinstance(v, bool)
        if tp is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return False
            try:
                return math.isfinite(v)
            except OverflowError:  # an integer beyond the range of a float
                return False
        if isinstance(tp, type) and issubclass(tp, Enum):
            return isinstance(v, tp) or v in {m.value for m in tp}
        return isinstance(v, tp) if isinstance(tp, type) else True

    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not ok(hints[name], value):
            shown = getattr(hints[name], "__name__", None) or str(hints[name]).replace("typing.", "")
            raise ConfigError(f"{what}: {name}={value!r:.60} is not a valid {shown}")


def from_spec(spec: Mapping) -> Modality:
    """The inverse of :func:`to_spec`; unknown fields, missing ones and values of the wrong type are
    `ConfigError`s naming them (a spec comes from a checkpoint's metadata: anyone's file)."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a modality spec must be a JSON object of fields, got {spec!r:.60}")
    known = {f.name for f in dataclasses.fields(Modality)}
    unknown = sorted(str(k) for k in set(spec) - known)
    if unknown:
        raise ConfigError(f"modality spec {spec.get('name')!r} has unknown fields {unknown}")
    missing = [k for k in ("name", "kind") if k not in spec]
    if missing:
        raise ConfigError(f"modality spec {spec.get('name')!r} lacks {missing}")
    check_types(Modality, spec, f"modality spec {spec.get('name')!r}")
    return Modality(**spec)


def is_builtin(name: str) -> bool:
    """An official entry (known to every installation, so checkpoints need not describe it)."""
    return name in _BUILTIN


def register_specs(specs: Iterable[Mapping], *, source: str = "checkpoint", keep_registered: bool = False) -> list[str]:
    """Register the modalities a checkpoint describes, so it loads in a fresh process.

    An identical entry already registered is fine; a different one under the same name is an
    error, because the checkpoint's embedding tables were built for its own definition, unless
    `keep_registered`: a checkpoint that only starts a model (`init_from`, weights copied where
    they fit) leaves the definitions a recipe registered, e.g. a finer token grid, as they are.
    """
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"{source}: the modality descriptions must be a JSON list of specs, got {specs!r:.60}")
    names = []
    for spec in specs:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ConfigError(f"{source}: a modality spec must be a JSON object with a 'name', got {spec!r:.60}")
        existing = _REGISTRY.get(spec.get("name"))
        if existing is not None and keep_registered:
            names.append(existing.name)
            continue
        if existing is not None:  # fields a checkpoint predates take the registered value
            spec = {**{f: getattr(existing, f) for f in _ADDED_FIELDS if f not in spec}, **spec}
        mod = from_spec(spec)
        if existing is not None and existing != mod:
            diff = [f"{f.name}: registered {getattr(existing, f.name)!r}, {source} {getattr(mod, f.name)!r}"
                    for f in dataclasses.fields(Modality) if getattr(existing, f.name) != getattr(mod, f.name)]
            raise ConfigError(f"{source} defines modality {mod.name!r} differently from the registered entry "
                             f"({'; '.join(diff)}); unregister it (open4m.modalities.unregister) or load in a fresh "
                             f"process")
        register(mod)
        names.append(mod.name)
    return names


# Fields added after checkpoints started describing their modalities (older files lack them).
_ADDED_FIELDS = ("pixel_mean", "pixel_std")


def specs_json(names: Iterable[str]) -> str | None:
    """JSON of the non-built-in modalities among `names` (None when all are built in)."""
    custom = [to_spec(get(n)) for n in dict.fromkeys(names) if not is_builtin(n)]
    return json.dumps(custom) if custom else None


def get_many(names: Iterable[str]) -> dict[str, Modality]:
    """Resolve several names at once (order kept)."""
    return {n: get(n) for n in names}


def all_modalities() -> Mapping[str, Modality]:
    """A read-only view of the registry."""
    return dict(_REGISTRY)


# ------------------------------------------------------------------------------------------
# The shared WordPiece vocabulary: the fixed ids of its structural tokens.
# ------------------------------------------------------------------------------------------
# Every 4M sequence modality (captions, boxes, metadata, ...) shares one WordPiece vocabulary whose
# structural tokens sit at fixed ids: [PAD] [UNK] [SOS] [EOS], the sentinels [S_0]..[S_199] of span
# masking, the value tokens v0=0..v3=999, then the 80 COCO class names in alphabetical order; the
# learned word pieces follow. Masking, the sampler and the text tokenizer all read these facts here.
WORDPIECE_VOCAB = 30000  # size of the released vocabulary
PAD_ID, UNK_ID, SOS_ID, EOS_ID = 0, 1, 2, 3
SENTINEL_BASE = 4  # [S_k] = SENTINEL_BASE + k
NUM_SENTINELS = 200
NUM_VALUE_KINDS = 4  # v0..v3
NUM_BINS = 1000  # values 0..999 per kind
VALUE_BASE = SENTINEL_BASE + NUM_SENTINELS  # v{kind}={value} = VALUE_BASE + kind * NUM_BINS + value
CLASS_BASE = VALUE_BASE + NUM_VALUE_KINDS * NUM_BINS  # COCO_CLASSES[i] = CLASS_BASE + i

COCO_CLASSES: tuple[str, ...] = tuple(sorted((
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)))


def special_token_layout(class_names: Iterable[str] = COCO_CLASSES) -> list[tuple[str, bool]]:
    """The fixed-id tokens in id order (token i has id i), each with whether it is matched on normalised text.

    Class names are normalised (lower-cased) so "Baseball Bat" still maps to one token; the
    bracketed and value tokens are matched verbatim.
    """
    tokens = [(t, False) for t in ("[PAD]", "[UNK]", "[SOS]", "[EOS]")]
    tokens += [(f"[S_{i}]", False) for i in range(NUM_SENTINELS)]
    tokens += [(f"v{k}={v}", False) for k in range(NUM_VALUE_KINDS) for v in range(NUM_BINS)]
    tokens += [(name, True) for name in class_names]
    return tokens


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the tokens span masking and generation write; defaults are the WordPiece layout above.

    Sentinel `[S_k]` has id `sentinel_base + k`; masking uses k >= 1 ([S_0] is never written).
    A model trained on another vocabulary passes its own ids to the maskers and the sampler.
    """

    pad: int = PAD_ID
    eos: int = EOS_ID
    sentinel_base: int = SENTINEL_BASE
    num_sentinels: int = NUM_SENTINELS

    def sentinel(self, k: int) -> int:
        if not 0 <= k < self.num_sentinels:
            raise ConfigError(f"sentinel [S_{k}] does not exist: the vocabulary has {self.num_sentinels} sentinels; "
                              f"use k in 0..{self.num_sentinels - 1} (or a vocabulary with more sentinels)")
        return self.sentinel_base + k

    def is_sentinel(self, token: int) -> bool:
        return self.sentinel_base <= token < self.sentinel_base + self.num_sentinels


# ------------------------------------------------------------------------------------------
# The official entries.
# ------------------------------------------------------------------------------------------
_HUB = "EPFL-VILAB/4M_tokenizers_"


def _image_tokens(name: str, vocab: int, size: int | None, patch: int, tokenizer: str, **kw) -> Modality:
    return Modality(
        name, Kind.IMAGE_TOKENS, vocab_size=vocab, image_size=size, patch_size=patch,
        encoder=True, decoder=True, pretokenized=True, tokenizer=tokenizer, **kw,
    )


def _sequence(name: str, max_tokens: int, description: str, embedding_max_length: int | None = None,
              shares: tuple[str, ...] = ("caption",)) -> Modality:
    return Modality(
        name, Kind.SEQUENCE, vocab_size=WORDPIECE_VOCAB, max_tokens=max_tokens,
        embedding_max_length=embedding_max_length, encoder=True, decoder=True,
        shares_vocab_with=shares, tokenizer="text", description=description,
    )


def _raw(name: str, channels: int, kind: Kind = Kind.RAW_IMAGE, **kw) -> Modality:
    return Modality(name, kind, num_channels=channels, **kw)


_OFFICIAL = [
    Modality("rgb@224", Kind.PIXELS, image_size=224, patch_size=16, num_channels=3, encoder=True,
             path="rgb", description="RGB pixels, ImageNet-normalised 16x16 patches"),
    _raw("rgb", 3, description="RGB image for tokenizer training"),
    _sequence("caption", 256, "caption text (WordPiece)", shares=()),
    _sequence("det", 256, "bounding boxes written as text"),
    _image_tokens("tok_rgb@224", 16384, 224, 16, _HUB + "rgb_16k_224-448", path="tok_rgb"),
    _image_tokens("tok_depth@224", 8192, 224, 16, _HUB + "depth_8k_224-448", path="tok_depth"),
    _raw("depth", 1),
    _image_tokens("tok_normal@224", 8192, 224, 16, _HUB + "normal_8k_224-448", path="tok_normal"),
    _raw("normal", 3),
    _image_tokens("tok_semseg@224", 4096, 224, 16, _HUB + "semseg_4k_224-448", path="tok_semseg"),
    _raw("semseg_coco", 64, num_labels=134),
    _image_tokens("tok_clip@224", 8192, 224, 16, _HUB + "CLIP-B16_8k_224-448", path="tok_clip"),
    _raw("CLIP-B16", 512, Kind.FEATURE_MAP),
    Modality("t5_caption", Kind.SEQUENCE_EMBEDDING, max_tokens=77, orig_emb_dim=4096, encoder=True,
             description="T5-XXL caption embeddings"),
    _sequence("metadata", 40, "image metadata as value-token pairs"),
    _sequence("human_poses", 275, "3D human poses (HMR2 boxes, pose codes, shape)", embedding_max_length=263),
    _sequence("color_palette", 23, "color palette, up to 7 colors"),
    _raw("sam_mask", 1, max_tokens=64, tokenizer=_HUB + "sam-instance_1k_64"),
    _sequence("sam_instance", 290, "SAM instances (box + mask codes per prompt point)"),
    _image_tokens("tok_canny_edge@224", 8192, 224, 16, _HUB + "edge_8k_224-512", path="tok_canny_edge"),
    _raw("canny_edge", 1),
    _image_tokens("tok_sam_edge@224", 8192, 224, 16, _HUB + "edge_8k_224-512", path="tok_sam_edge"),
    _image_tokens("tok_dinov2@224", 8192, 224, 14, _HUB + "DINOv2-B14_8k_224-448", path="tok_dinov2"),
    _raw("DINOv2-B14", 768, Kind.FEATURE_MAP),
    _image_tokens("tok_imagebind@224", 8192, 224, 14, _HUB + "ImageBind-H14_8k_224-448", path="tok_imagebind"),
    _raw("ImageBind-H14", 1280, Kind.FEATURE_MAP),
    _image_tokens("tok_dinov2_global", 8192, None, 56, _HUB + "DINOv2-B14-global_8k_16_224",
                  sincos_pos_emb=False, max_tokens=16),
    _raw("DINOv2-B14-global", 768, Kind.FEATURE_MAP),
    _image_tokens("tok_imagebind_global", 8192, None, 56, _HUB + "ImageBind-H14-global_8k_16_224",
                  sincos_pos_emb=False, max_tokens=16),
    _raw("ImageBind-H14-global", 1280, Kind.FEATURE_MAP),
    Modality("rgb@448", Kind.PIXELS, image_size=448, patch_size=16, num_channels=3, encoder=True, path="rgb"),
    _image_tokens("tok_rgb@448", 16384, 448, 16, _HUB + "rgb_16k_224-448", path="tok_rgb"),
    _image_tokens("tok_depth@448", 8192, 448, 16, _HUB + "depth_8k_224-448", path="tok_depth"),
    _image_tokens("tok_normal@448", 8192, 448, 16, _HUB + "normal_8k_224-448", path="tok_normal"),
    _image_tokens("tok_semseg@448", 4096, 448, 16, _HUB + "semseg_4k_224-448", path="tok_semseg"),
    _image_tokens("tok_clip@448", 8192, 448, 16, _HUB + "CLIP-B16_8k_224-448", path="tok_clip"),
]
for _m in _OFFICIAL:
    register(_m)
_BUILTIN: frozenset[str] = frozenset(_REGISTRY)

# ------------------------------------------------------------------------------------------
# open4m's own modalities, fed by the offline network labelers (open4m.data.labelers; extra
# `open4m[labelers]`). Not official: `is_builtin` is False for them, so no released model claims them.
# ------------------------------------------------------------------------------------------
_EXTENSIONS = [
    _raw("sam_edge", 1, description="SAM edges (instance boundaries), the raw form of tok_sam_edge (the official "
                                    "registry lists only the tokens)"),
    _raw("hed_edge", 1, description="HED edges (BSDS500 VGG16-HED), a [0, 1] map at the image's resolution"),
    _image_tokens("tok_hed_edge@224", 8192, 224, 16, _HUB + "edge_8k_224-512", path="tok_hed_edge"),
    _sequence("keypoints", 256, "MediaPipe body poses: per person a box and 33 keypoints (x, y, visibility)"),
    _raw("person_mask", 1, description="MediaPipe person segmentation, a [0, 1] mask"),
    Modality("caption_emb", Kind.SEQUENCE_EMBEDDING, max_tokens=77, orig_emb_dim=384, encoder=True,
             description="all-MiniLM-L6-v2 per-token states of the caption (a T5-caption stand-in)"),
    _sequence("ocr", 256, "RapidOCR text boxes written like det, the class being the recognised text"),
]
for _m in _EXTENSIONS:
    register(_m)

#: The modalities of the released 4M-7 models.
FOURM_7: tuple[str, ...] = (
    "rgb@224", "caption", "det", "tok_rgb@224", "tok_depth@224", "tok_normal@224", "tok_semseg@224", "tok_clip@224",
)
#: The modalities of the released 4M-21 models.
FOURM_21: tuple[str, ...] = FOURM_7 + (
    "t5_caption", "metadata", "human_poses", "color_palette", "sam_instance", "tok_canny_edge@224",
    "tok_sam_edge@224", "tok_dinov2@224", "tok_imagebind@224", "tok_dinov2_global", "tok_imagebind_global",
)
#: The modalities of the released 4M-7 super-resolution model.
FOURM_7_SR: tuple[str, ...] = FOURM_7 + (
    "rgb@448", "tok_rgb@448", "tok_depth@448", "tok_normal@448", "tok_semseg@448", "tok_clip@448",
)
PRESETS: dict[str, tuple[str, ...]] = {"4M-7": FOURM_7, "4M-21": FOURM_21, "4M-7-SR": FOURM_7_SR}

__all__ = [
    "Kind", "Modality", "UnknownModalityError", "register", "unregister", "get", "get_many", "all_modalities",
    "modality_id", "to_spec", "from_spec", "is_builtin", "register_specs", "specs_json", "FOURM_7", "FOURM_21", "FOURM_7_SR", "PRESETS", "WORDPIECE_VOCAB",
    "SpecialTokens", "PAD_ID", "UNK_ID", "SOS_ID", "EOS_ID", "SENTINEL_BASE", "NUM_SENTINELS", "NUM_VALUE_KINDS",
    "NUM_BINS", "VALUE_BASE", "CLASS_BASE", "COCO_CLASSES", "special_token_layout",
]
