"""Sequence codecs: structured annotations <-> text over the 4M vocabulary <-> token ids.

4M writes boxes, palettes, metadata, poses and SAM instances as short texts made of value tokens
(``v0=..v3=``, 1000 each) and a few words, then runs them through the shared WordPiece tokenizer.
Each codec here has ``to_text``/``from_text`` (the official string formats, see
``/work/shared/spec/sequences.md``) and ``encode(data, tokenizer)``/``decode(ids, tokenizer)``.
Parsing back is exact up to the quantization the format implies: ``encode(decode(encode(x)))``
always equals ``encode(x)``.

Where the official transforms randomise (metadata field order, pose group order) the codecs take an
optional ``random.Random``; without one the order is canonical, so outputs are reproducible.

``keypoints`` and ``ocr`` are open4m's own formats for the MediaPipe and RapidOCR labelers
(:mod:`open4m.data.labelers.pose`, :mod:`open4m.data.labelers.ocr`): both are written with the same
box words as ``det`` and fit the registry's ``max_tokens`` by dropping whole persons or boxes.
"""

from __future__ import annotations

import logging
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Generic, Mapping, Sequence, TypeVar

import torch

from .. import modalities
from ..errors import DataError
from .text import TextTokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "json_list", "numbers",
    "Box", "BoxCodec", "PaletteCodec", "MetadataCodec", "METADATA_FIELDS", "HumanPose", "HumanPoseCodec",
    "SamInstance", "SamQuery", "SamInstanceCodec", "CaptionCodec", "KeypointsCodec", "OcrCodec", "CODECS",
    "BODY_KEYPOINT_NAMES", "BODY_KEYPOINT_FLIP", "NUM_BODY_KEYPOINTS", "normalize_ocr_text",
]

_VALUE = re.compile(r"^v([0-3])=(\d{1,3})$")
T = TypeVar("T")


def json_list(value: Any, name: str, what: str) -> list[Any]:
    """`value` when it is a JSON list; else a `DataError` naming the modality and what the list holds."""
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{name}: expected a JSON list of {what}, got {type(value).__name__} {value!r:.60}")
    return list(value)


def numbers(value: Any, name: str, what: str, length: int | None = None, *, integers: bool = False) -> tuple:
    """A JSON list of finite numbers (of `length` when given) as a tuple of floats (ints with `integers`);
    anything else (a string, null, NaN, a nested list, a wrong count) is a `DataError` naming `what`."""
    items = json_list(value, name, what)
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items)
    if not ok or (length is not None and len(items) != length):
        count = f"{length} " if length is not None else ""
        raise DataError(f"{name}: {what} must be a list of {count}finite numbers, got {value!r:.80}")
    return tuple(int(v) if integers else float(v) for v in items)


def _v(kind: int, value: int) -> str:
    if not 0 <= value <= 999:
        raise DataError(f"value token v{kind}={value} is out of range 0..999 (quantize first)")
    return f"v{kind}={value}"


def _parse_value(word: str, kind: int | None = None, where: str = "") -> tuple[int, int]:
    match = _VALUE.match(word)
    if not match or (kind is not None and int(match.group(1)) != kind):
        want = f"v{kind}=<n>" if kind is not None else "a value token"
        raise DataError(f"{where}: expected {want}, got {word!r}")
    return int(match.group(1)), int(match.group(2))


def _at(words: Sequence[str], i: int) -> str:
    """The i-th word, or a marker that makes the parse error say the sequence ended early."""
    return words[i] if i < len(words) else "<end of sequence>"


def _code_words(codes: Sequence[int]) -> list[str]:
    """VQ code ids 0..1023 as value tokens: ``v0=id`` below 512, ``v1=id-512`` above (official split)."""
    out = []
    for c in codes:
        c = int(c)
        if not 0 <= c < 1024:
            raise DataError(f"VQ code {c} must lie in [0, 1024)")
        out.append(_v(0, c) if c < 512 else _v(1, c - 512))
    return out


def _parse_codes(words: Sequence[str], where: str) -> list[int]:
    codes = []
    for w in words:
        kind, value = _parse_value(w, where=where)
        if kind not in (0, 1) or value >= 512:
            raise DataError(f"{where}: {w!r} is not a VQ code token (v0=0..511 or v1=0..511)")
        codes.append(value + 512 * kind)
    return codes


def _quantize(x: float, bins: int = 1000) -> int:
    if not 0.0 <= x <= 1.0:
        raise DataError(f"normalised coordinate {x} must lie in [0, 1]")
    return round(x * (bins - 1))


def _box_words(box: Sequence[float]) -> list[str]:
    """``v0=xmin v1=ymin v2=xmax v3=ymax``: a normalised box in 1000 bins, the box of every format here."""
    if len(box) != 4:
        raise DataError(f"a box is 4 normalised corners (xmin, ymin, xmax, ymax), got {len(box)} values")
    return [_v(k, _quantize(float(c))) for k, c in enumerate(box)]


def _parse_box(words: Sequence[str], i: int, where: str) -> tuple[float, float, float, float]:
    """The box written by :func:`_box_words` at ``words[i:i + 4]``, back in [0, 1]."""
    return tuple(_parse_value(_at(words, i + k), k, where)[1] / 999 for k in range(4))  # type: ignore[return-value]


def _registry_max_tokens(name: str, max_tokens: int | None) -> int:
    """`max_tokens` when given, else the registry's length of `name` (read at use, so re-registering counts)."""
    return max_tokens if max_tokens is not None else int(modalities.get(name).max_tokens)


class _TextCodec(Generic[T]):
    """encode/decode through a :class:`TextTokenizer`, on top of to_text/from_text."""

    def to_text(self, data: T, rng: random.Random | None = None) -> str:
        raise NotImplementedError

    def from_text(self, text: str) -> T:
        raise NotImplementedError

    def read_generated(self, text: str) -> T:
        """A model's generated text -> data. The same as `from_text` unless a codec can keep the readable part
        of a slightly malformed generation (metadata: field by field); text a user writes goes to `from_text`."""
        return self.from_text(text)

    def encode(self, data: T, tokenizer: TextTokenizer, rng: random.Random | None = None) -> torch.Tensor:
        return tokenizer.encode(self.to_text(data, rng))

    def decode(self, ids: torch.Tensor | Sequence[int], tokenizer: TextTokenizer) -> T:
        return self.read_generated(tokenizer.decode(ids))


# -- det ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """A detection: corners normalised to [0, 1] (x right, y down) and a class name.

    `score` is a labeler's detector score (`BoxCodec` drops boxes under its threshold when writing
    pseudo-labels). A box a FourM generated has `confidence`, the model's probability of it, and
    `alternatives`, the other (class name, probability) pairs it weighed for the same box
    (`open4m.generation.confidence`); writing the box back as a condition keeps it whatever they are.
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    class_name: str
    score: float = 1.0
    confidence: float | None = None
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class BoxCodec(_TextCodec[list[Box]]):
    """``v0=xmin v1=ymin v2=xmax v3=ymax <class>`` per box, closest-to-origin first, 1000 bins."""

    score_threshold: float = 0.6

    def to_text(self, boxes: Sequence[Box], rng: random.Random | None = None) -> str:
        rows = []
        for b in boxes:
            if b.score < self.score_threshold:
                continue
            if not b.class_name.strip():
                raise DataError("det: every box needs a class name")
            q = [_quantize(c) for c in (b.xmin, b.ymin, b.xmax, b.ymax)]
            rows.append((q, b.class_name.strip().lower()))
        rows.sort(key=lambda r: (r[0][0] ** 2 + r[0][1] ** 2, r[0], r[1]))
        return " ".join(" ".join(_v(k, v) for k, v in enumerate(q)) + " " + name for q, name in rows)

    def from_text(self, text: str) -> list[Box]:
        words, boxes, i = text.split(), [], 0
        while i < len(words):
            box = _parse_box(words, i, "det")
            i += 4
            name = []
            while i < len(words) and not _VALUE.match(words[i]):
                name.append(words[i])
                i += 1
            if not name:
                raise DataError(f"det: box {len(boxes)} has no class name")
            boxes.append(Box(*box, class_name=" ".join(name)))
        return boxes

    def read_generated(self, text: str) -> list[Box]:
        """Every well-formed box of a generation (``v0= v1= v2= v3=`` in order, then a class name); words that
        start no such box are skipped, so one garbled box (a missing corner, a stray value) does not cost the
        others. A generation with no well-formed box is an error, as in `from_text`."""
        words, boxes, i = text.split(), [], 0
        while i < len(words):
            try:
                corners = _parse_box(words, i, "det")
            except DataError:
                i += 1
                continue
            end = i + 4
            while end < len(words) and not _VALUE.match(words[end]):
                end += 1
            if end > i + 4:
                boxes.append(Box(*corners, class_name=" ".join(words[i + 4:end])))
            i = max(end, i + 1)
        if text.strip() and not boxes:
            return self.from_text(text)  # raises with what is wrong at the first box
        return boxes


# -- color palette -------------------------------------------------------------------------------
def _is_colour(channels: Sequence[float]) -> bool:
    return all(0 <= v <= 255 for v in channels)


def _checked_colour(channels: Sequence[float]) -> tuple:
    """`channels` as a colour, or the error that says why they are none."""
    if not _is_colour(channels):
        raise DataError(f"color_palette: colours are (r, g, b) in 0..255, got {tuple(channels)}")
    return tuple(channels)


@dataclass(frozen=True)
class PaletteCodec(_TextCodec[list[tuple[int, int, int]]]):
    """``v1=<k>`` then ``v0=r v0=g v0=b`` per colour, channels as 0..255 integers, 1 to 7 colours."""

    max_colors: int = 7

    def to_text(self, colors: Sequence[Sequence[int]], rng: random.Random | None = None) -> str:
        colors = json_list(colors, "color_palette", "colours (r, g, b)")
        if not 1 <= len(colors) <= self.max_colors:
            raise DataError(f"color_palette: need 1 to {self.max_colors} colours, got {len(colors)}")
        words = [_v(1, len(colors))]
        for c in colors:
            c = _checked_colour(numbers(c, "color_palette", "a colour (r, g, b)", 3))
            words += [_v(0, round(v)) for v in c]
        return " ".join(words)

    def from_text(self, text: str) -> list[tuple[int, int, int]]:
        words = text.split()
        if not words:
            raise DataError("color_palette: empty sequence")
        _, k = _parse_value(words[0], 1, "color_palette")
        values = [_parse_value(w, 0, "color_palette")[1] for w in words[1:]]
        if len(values) != 3 * k:
            raise DataError(f"color_palette: header says {k} colours but {len(values)} values follow")
        return [_checked_colour(tuple(values[i:i + 3])) for i in range(0, len(values), 3)]  # type: ignore[misc]

    def read_generated(self, text: str) -> list[tuple[int, int, int]]:
        """The readable palette of a generation, colour by colour: the header's count of complete ``v0=``
        triples, skipping stray tokens (a repeated ``v1=<k>`` header). A sampler that runs on after the last
        colour keeps the palette it finished; one that stopped early keeps its complete colours (a palette
        distance then charges the missing ones). A colour with a channel over 255 (a value token no colour has,
        which a weak model can write) is no colour and is skipped. No readable colour at all is an error, as in
        `from_text`."""
        words = text.split()
        if words:
            _, k = _parse_value(words[0], 1, "color_palette")
            values = [int(m.group(2)) for m in map(_VALUE.match, words[1:]) if m is not None and m.group(1) == "0"]
            triples = [tuple(values[i:i + 3]) for i in range(0, 3 * min(k, len(values) // 3), 3)]
            colors = [c for c in triples if _is_colour(c)]
            if colors:
                return colors  # type: ignore[return-value]
        return self.from_text(text)


# -- metadata ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # 'pixels' (// 32), 'int', 'float' (50 bins in [lo, hi]), 'split' (thresholds)
    lo: float = 0.0
    hi: float = 0.0
    splits: tuple[float, ...] = ()
    centers: tuple[float, ...] = ()


METADATA_FIELDS: tuple[_Field, ...] = (
    _Field("original_width", "pixels"), _Field("original_height", "pixels"),
    _Field("caption_n_chars", "int"), _Field("caption_n_words", "int"), _Field("caption_n_sentences", "int"),
    _Field("n_humans", "int"), _Field("n_sam_instances", "int"), _Field("n_coco_instances", "int"),
    _Field("coco_instance_diversity", "int"),
    _Field("colorfulness", "float", 0, 150), _Field("brightness", "float", 0, 255), _Field("contrast", "float", 0, 127),
    _Field("saturation", "float", 0, 255), _Field("entropy", "float", 0, 10), _Field("walkability", "float", 0, 1),
    _Field("objectness", "float", 0, 1), _Field("semantic_diversity", "int"),
    _Field("geometric_complexity", "float", 0, 0.75), _Field("occlusion_score", "float", 0, 0.25),
    _Field("watermark_score", "split", splits=(0.5,), centers=(0.25, 0.75)),
    _Field("aesthetic_score", "split", splits=(4.5, 5.5), centers=(4.0, 5.0, 6.0)),
)
_FIELD_INDEX = {f.name: i for i, f in enumerate(METADATA_FIELDS)}


@dataclass(frozen=True)
class MetadataCodec(_TextCodec[dict[str, float]]):
    """One ``v1=<field index> v0=<value>`` pair per field; floats in ``bins`` bins over a fixed range.

    Decoding returns each bin's centre (the official plotting code divides by ``bins`` instead of
    ``bins - 1``, which shifts every value; here re-encoding a decoded value gives the same bin).
    """

    bins: int = 50

    def _quantize(self, f: _Field, x: float) -> int:
        if not math.isfinite(x):
            raise DataError(f"metadata {f.name}: value {x} is not finite")
        if f.kind == "pixels":
            return min(max(int(x) // 32, 0), 999)
        if f.kind == "int":
            return min(max(int(x), 0), 999)
        if f.kind == "split":
            return sum(x >= s for s in f.splits)
        clipped = min(max(x, f.lo), f.hi)
        return int((clipped - f.lo) / (f.hi - f.lo) * (self.bins - 1))

    def _dequantize(self, f: _Field, q: int) -> float:
        if f.kind == "pixels":
            return float(q * 32 + 16)
        if f.kind == "int":
            return float(q)
        if f.kind == "split":
            if q >= len(f.centers):
                raise DataError(f"metadata {f.name}: bin {q} does not exist")
            return f.centers[q]
        if q >= self.bins:
            raise DataError(f"metadata {f.name}: bin {q} exceeds {self.bins - 1}")
        return min(f.lo + (q + 0.5) / (self.bins - 1) * (f.hi - f.lo), f.hi)

    def to_text(self, meta: dict[str, float], rng: random.Random | None = None) -> str:
        if not isinstance(meta, Mapping):
            raise DataError(f"metadata: expected a dict of fields, got {type(meta).__name__}; store metadata as a "
                            "JSON object {field: value}")
        unknown = sorted(str(k) for k in set(meta) - set(_FIELD_INDEX))
        if unknown:
            raise DataError(f"metadata: unknown fields {unknown}; known: {[f.name for f in METADATA_FIELDS]}")
        names = sorted(meta, key=_FIELD_INDEX.__getitem__)
        if rng is not None:
            rng.shuffle(names)
        pairs = []
        for name in names:
            f = METADATA_FIELDS[_FIELD_INDEX[name]]
            value = numbers([meta[name]], "metadata", f"field {name!r}", 1)[0]
            pairs.append(f"{_v(1, _FIELD_INDEX[name])} {_v(0, self._quantize(f, value))}")
        return " ".join(pairs)

    def from_text(self, text: str) -> dict[str, float]:
        words = text.split()
        if len(words) % 2:
            raise DataError("metadata: expected pairs of 'v1=<field> v0=<value>' tokens")
        return dict(self._pair(words[i], words[i + 1]) for i in range(0, len(words), 2))

    def read_generated(self, text: str) -> dict[str, float]:
        """Every well-formed ``v1=<field> v0=<value>`` pair; stray tokens between pairs are skipped.

        A sampler that drops or repeats one token should cost that field, not the whole sequence (the world
        model sometimes drops the first `v1=`). A field named twice keeps its first value; text without a
        single readable pair is an error.
        """
        words = text.split()
        out: dict[str, float] = {}
        problems = []
        i = 0
        while i < len(words):
            try:
                name, value = self._pair(words[i], _at(words, i + 1))
                out.setdefault(name, value)
                i += 2
            except DataError as e:
                problems.append(str(e))
                i += 1
        if not out and words:
            raise DataError(f"metadata: no 'v1=<field> v0=<value>' pair could be read ({problems[0]})")
        return out

    def _pair(self, field_word: str, value_word: str) -> tuple[str, float]:
        _, idx = _parse_value(field_word, 1, "metadata field")
        _, q = _parse_value(value_word, 0, "metadata value")
        if idx >= len(METADATA_FIELDS):
            raise DataError(f"metadata: field index {idx} does not exist (0..{len(METADATA_FIELDS) - 1})")
        f = METADATA_FIELDS[idx]
        return f.name, self._dequantize(f, q)


# -- human poses ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HumanPose:
    """One person: box (normalised corners), 8 pose-tokenizer codes, 3x3 global rotation, camera, 10 betas."""

    box: tuple[float, float, float, float]
    pose_codes: tuple[int, ...]
    global_orient: tuple[float, ...]  # 9 values in [-1, 1]
    camera: tuple[float, ...]  # 3 values, clipped to [-1, 19]
    betas: tuple[float, ...]  # 10 values, clipped to [-3, 3]


# keyword -> (attribute, count, scale, offset, low, high): v0 = round(scale * clip(x, low, high) + offset)
_POSE_GROUPS = {
    "global": ("global_orient", 9, 499.5, 499.5, -1.0, 1.0),
    "camera": ("camera", 3, 49.95, 49.95, -1.0, 19.0),
    "shape": ("betas", 10, 166.5, 499.5, -3.0, 3.0),
}
_POSE_ORDER = ("pose", "global", "camera", "shape")


@dataclass(frozen=True)
class HumanPoseCodec(_TextCodec[list[HumanPose]]):
    """``human v0..v3`` then the groups ``pose`` (8 codes), ``global`` (9), ``camera`` (3), ``shape`` (10)
    in random order (with ``rng``) or canonical order; ``none`` when nobody is there."""

    num_pose_codes: int = 8

    def to_text(self, humans: Sequence[HumanPose], rng: random.Random | None = None) -> str:
        if not humans:
            return "none"
        parts = []
        for h in humans:
            words = ["human"] + _box_words(h.box)
            order = list(_POSE_ORDER)
            if rng is not None:
                rng.shuffle(order)
            for group in order:
                words.append(group)
                if group == "pose":
                    if len(h.pose_codes) != self.num_pose_codes:
                        raise DataError(f"human_poses: need {self.num_pose_codes} pose codes, got {len(h.pose_codes)}")
                    words += _code_words(h.pose_codes)
                    continue
                attr, count, scale, offset, lo, hi = _POSE_GROUPS[group]
                values = getattr(h, attr)
                if len(values) != count:
                    raise DataError(f"human_poses: {attr} needs {count} values, got {len(values)}")
                words += [_v(0, round(scale * min(max(float(x), lo), hi) + offset)) for x in values]
            parts.append(" ".join(words))
        return " ".join(parts)

    def from_text(self, text: str) -> list[HumanPose]:
        words = text.split()
        if words == ["none"]:
            return []
        humans, i = [], 0
        while i < len(words):
            if words[i] != "human":
                raise DataError(f"human_poses: expected 'human', got {words[i]!r}")
            box = _parse_box(words, i + 1, "human box")
            i += 5
            fields: dict[str, Any] = {}
            for _ in range(len(_POSE_ORDER)):
                group = _at(words, i)
                if group not in _POSE_ORDER or group in fields:
                    raise DataError(f"human_poses: expected one of {_POSE_ORDER} (each once), got {group!r}")
                if group == "pose":
                    codes = _parse_codes(words[i + 1:i + 1 + self.num_pose_codes], "human pose codes")
                    if len(codes) != self.num_pose_codes:
                        raise DataError(f"human_poses: need {self.num_pose_codes} pose codes, got {len(codes)}")
                    fields[group] = tuple(codes)
                    i += 1 + self.num_pose_codes
                    continue
                attr, count, scale, offset, _, _ = _POSE_GROUPS[group]
                vals = [_parse_value(w, 0, f"human {group}")[1] for w in words[i + 1:i + 1 + count]]
                if len(vals) != count:
                    raise DataError(f"human_poses: {group} needs {count} values, got {len(vals)}")
                fields[group] = tuple((v - offset) / scale for v in vals)
                i += 1 + count
            humans.append(HumanPose(box, fields["pose"], fields["global"], fields["camera"], fields["shape"]))
        return humans


# -- SAM instances -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamInstance:
    """An instance: pixel box (xmin, ymin, xmax, ymax) in the 224 crop and its mask-tokenizer codes."""

    box: tuple[int, int, int, int]
    codes: tuple[int, ...]


@dataclass(frozen=True)
class SamQuery:
    """A query point (x, y) in pixels and the instances whose polygon contains it."""

    point: tuple[int, int]
    instances: tuple[SamInstance, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SamInstanceCodec(_TextCodec[list[SamQuery]]):
    """``point v0=<y> v1=<x>`` then ``polygon v0..v3 <codes>`` per containing instance (or ``none``);
    coordinates are raw pixels, not 1000 bins."""

    num_codes: int = 16

    def to_text(self, queries: Sequence[SamQuery], rng: random.Random | None = None) -> str:
        words: list[str] = []
        for q in queries:
            x, y = q.point
            words += ["point", _v(0, int(y)), _v(1, int(x))]
            if not q.instances:
                words.append("none")
            for inst in q.instances:
                if len(inst.codes) != self.num_codes:
                    raise DataError(f"sam_instance: need {self.num_codes} codes per instance, got {len(inst.codes)}")
                words += ["polygon"] + [_v(k, int(c)) for k, c in enumerate(inst.box)] + _code_words(inst.codes)
        return " ".join(words)

    def from_text(self, text: str) -> list[SamQuery]:
        words, out, i = text.split(), [], 0
        while i < len(words):
            if words[i] != "point":
                raise DataError(f"sam_instance: expected 'point', got {words[i]!r}")
            y = _parse_value(_at(words, i + 1), 0, "sam point")[1]
            x = _parse_value(_at(words, i + 2), 1, "sam point")[1]
            i += 3
            instances = []
            if i < len(words) and words[i] == "none":
                i += 1
            while i < len(words) and words[i] == "polygon":
                box = tuple(_parse_value(_at(words, i + 1 + k), k, "sam box")[1] for k in range(4))
                codes = _parse_codes(words[i + 5:i + 5 + self.num_codes], "sam codes")
                if len(codes) != self.num_codes:
                    raise DataError(f"sam_instance: need {self.num_codes} codes, got {len(codes)}")
                instances.append(SamInstance(box, tuple(codes)))  # type: ignore[arg-type]
                i += 5 + self.num_codes
            out.append(SamQuery((x, y), tuple(instances)))
        return out


# -- keypoints (MediaPipe body poses) ----------------------------------------------------------
#: MediaPipe Pose's 33 landmarks in order (BlazePose topology); "left"/"right" are the person's own sides.
BODY_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
NUM_BODY_KEYPOINTS = len(BODY_KEYPOINT_NAMES)


def _mirrored(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    return name


#: Index permutation of a horizontally flipped image: the person's left keypoints now show where the right
#: ones were, so a flip must swap them or the labels would describe a body with crossed sides.
BODY_KEYPOINT_FLIP: tuple[int, ...] = tuple(BODY_KEYPOINT_NAMES.index(_mirrored(n)) for n in BODY_KEYPOINT_NAMES)
#: What the marker word, the box and one keypoint cost in tokens (every word is one fixed token).
_PERSON_HEADER_TOKENS, _KEYPOINT_TOKENS = 5, 3


def _unit(x: Any, what: str) -> float:
    """A finite number clipped into [0, 1]: landmarks of a person cut by the frame lie just outside it."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise DataError(f"{what} must be a finite number, got {x!r:.40}")
    return min(max(float(x), 0.0), 1.0)


@dataclass(frozen=True)
class KeypointsCodec(_TextCodec[list[dict[str, Any]]]):
    """Per person ``person v0=xmin v1=ymin v2=xmax v3=ymax`` then ``v0=x v1=y v2=visibility`` per keypoint;
    ``none`` when nobody is there.

    Input and output are the ``keypoints`` label JSON: a list of ``{"box": [x0, y0, x1, y1], "keypoints":
    [[x, y, visibility], ...]}``, everything normalised to [0, 1]. Coordinates are clipped to [0, 1]
    and quantised like every box (1000 bins); visibility goes into `visibility_levels` bins
    (``round(v * (levels - 1))``, so 0 / 0.5 / 1 by default: hidden, unsure, visible). Decoding returns
    the bin values, so ``from_text(to_text(x))`` is `x` quantised.

    Persons are written largest box first; only as many as fit `max_tokens` (the registry's, [EOS]
    included) are kept: 104 tokens a person, so 2 at the default 256. The rest are dropped, smallest
    first, which keeps the people a caption would mention.
    """

    num_keypoints: int = NUM_BODY_KEYPOINTS
    visibility_levels: int = 3
    max_tokens: int | None = None

    @property
    def tokens_per_person(self) -> int:
        return _PERSON_HEADER_TOKENS + _KEYPOINT_TOKENS * self.num_keypoints

    @property
    def max_persons(self) -> int:
        """How many persons fit the token budget, one token left for [EOS]."""
        return max(0, (_registry_max_tokens("keypoints", self.max_tokens) - 1) // self.tokens_per_person)

    def _person(self, person: Any, n: int) -> tuple[tuple[int, ...], list[str]]:
        """(quantised box, words) of one person of the label JSON."""
        if not isinstance(person, Mapping) or "box" not in person or "keypoints" not in person:
            raise DataError(f"keypoints: person {n} must be a dict with 'box' and 'keypoints', got {person!r:.80}")
        box = [_unit(c, f"keypoints: person {n} box") for c in numbers(person["box"], "keypoints", f"person {n} box", 4)]
        words = ["person"] + _box_words(box)
        q = tuple(_quantize(c) for c in box)
        points = json_list(person["keypoints"], "keypoints", f"person {n} keypoints")
        if len(points) != self.num_keypoints:
            raise DataError(f"keypoints: person {n} has {len(points)} keypoints, the format has {self.num_keypoints}")
        for p in points:
            coords = numbers(p, "keypoints", f"person {n} keypoint [x, y, visibility]", 3)
            x, y, vis = (_unit(c, f"keypoints: person {n} keypoint") for c in coords)
            words += [_v(0, _quantize(x)), _v(1, _quantize(y)), _v(2, _quantize(vis, self.visibility_levels))]
        return q, words

    def to_text(self, persons: Sequence[Mapping[str, Any]], rng: random.Random | None = None) -> str:
        if self.visibility_levels < 2:
            raise DataError(f"keypoints: visibility_levels must be at least 2, got {self.visibility_levels}")
        rows = [self._person(p, n) for n, p in enumerate(json_list(persons, "keypoints", "persons"))]
        rows.sort(key=lambda r: (-(r[0][2] - r[0][0]) * (r[0][3] - r[0][1]), r[0], r[1]))
        keep = self.max_persons
        if len(rows) > keep:
            logger.debug("keypoints: %d persons, %d fit the token budget; the smallest are dropped", len(rows), keep)
        rows = rows[:keep]
        return " ".join(" ".join(words) for _, words in rows) if rows else "none"

    def from_text(self, text: str) -> list[dict[str, Any]]:
        words = text.split()
        if words == ["none"]:
            return []
        persons, i, step = [], 0, self.tokens_per_person
        while i < len(words):
            if words[i] != "person":
                raise DataError(f"keypoints: expected 'person', got {words[i]!r}")
            box = _parse_box(words, i + 1, "keypoints box")
            points = []
            for j in range(i + _PERSON_HEADER_TOKENS, i + step, _KEYPOINT_TOKENS):
                x, y, vis = (_parse_value(_at(words, j + k), k, "keypoint")[1] for k in range(3))
                if vis >= self.visibility_levels:
                    raise DataError(f"keypoints: visibility bin v2={vis} exceeds {self.visibility_levels - 1}")
                points.append([x / 999, y / 999, vis / (self.visibility_levels - 1)])
            persons.append({"box": list(box), "keypoints": points})
            i += step
        return persons


# -- ocr (RapidOCR text boxes) -------------------------------------------------------------------
# A word of recognised text that the tokenizer would read as a value token, e.g. "v2=15".
_VALUE_IN_TEXT = re.compile(r"(?<!\w)(v[0-3])=(?=\d)")


def normalize_ocr_text(text: str) -> str:
    """Text as :class:`OcrCodec` writes it: lower case, whitespace collapsed, and a value-token look-alike
    (``v1=20``) split at its ``=`` (``v1 =20``), so recognised text can never read as a coordinate.

    ``[UNK]``, which the tokenizer decodes for characters outside its vocabulary, stays upper case:
    re-encoding decoded text must give the unknown token again, not the letters ``[unk]``.
    """
    lowered = " ".join(str(text).lower().split()).replace("[unk]", "[UNK]")
    return _VALUE_IN_TEXT.sub(r"\1 =", lowered)


@dataclass(frozen=True)
class OcrCodec(_TextCodec[list[dict[str, Any]]]):
    """``v0=xmin v1=ymin v2=xmax v3=ymax <text>`` per text box, like ``det`` with the recognised text as class.

    Input and output are the ``ocr`` label JSON: a list of ``{"box": [x0, y0, x1, y1], "text": str,
    "score": float}``. A box's text runs to the next ``v0=`` word (text never holds value tokens:
    :func:`normalize_ocr_text`), so multi-word strings round-trip. Boxes under `score_threshold` or
    with empty text are dropped; the rest are written in reading order (top to bottom, then left to
    right, on the quantised corners). ``from_text(to_text(x))`` is `x` with quantised boxes,
    normalised text and no score; through the WordPiece tokenizer the text also gets its normaliser
    (punctuation split off, unknown characters as ``[UNK]``), after which it is stable.

    :meth:`encode` keeps the longest prefix of boxes whose tokens fit `max_tokens` ([EOS] included;
    default: the registry's): the sequence is cut between boxes, never inside one.

    The default threshold 0.7 is above what RapidOCR reads into textless photos (a lone "O" at 0.54 in
    skimage's cat, "M6" at 0.69 in its coins) and below real text (0.83 to 0.99 on the example photos);
    the label files keep every line from 0.5 with its score, so another threshold needs no relabelling.
    """

    score_threshold: float = 0.7
    max_tokens: int | None = None

    def _rows(self, boxes: Sequence[Mapping[str, Any]]) -> list[str]:
        rows = []
        for n, b in enumerate(json_list(boxes, "ocr", "text boxes")):
            if not isinstance(b, Mapping) or "box" not in b or not isinstance(b.get("text"), str):
                raise DataError(f"ocr: box {n} must be a dict with 'box' and a 'text' string, got {b!r:.80}")
            if numbers([b.get("score", 1.0)], "ocr", f"box {n} score", 1)[0] < self.score_threshold:
                continue
            text = normalize_ocr_text(b["text"])
            if not text:
                continue
            box = [_unit(c, f"ocr: box {n}") for c in numbers(b["box"], "ocr", f"box {n} box", 4)]
            q = [_quantize(c) for c in box]
            rows.append(((q[1], q[0], q[3], q[2], text), " ".join(_box_words(box)) + " " + text))
        rows.sort(key=lambda r: r[0])
        return [text for _, text in rows]

    def to_text(self, boxes: Sequence[Mapping[str, Any]], rng: random.Random | None = None) -> str:
        return " ".join(self._rows(boxes))

    def from_text(self, text: str) -> list[dict[str, Any]]:
        words, out, i = text.split(), [], 0
        while i < len(words):
            box = _parse_box(words, i, "ocr")
            i += 4
            start = i
            while i < len(words) and not _VALUE.match(words[i]):
                i += 1
            if i == start:
                raise DataError(f"ocr: box {len(out)} has no text")
            out.append({"box": list(box), "text": " ".join(words[start:i])})
        return out

    def encode(self, boxes: Sequence[Mapping[str, Any]], tokenizer: TextTokenizer,
               rng: random.Random | None = None) -> torch.Tensor:
        budget = _registry_max_tokens("ocr", self.max_tokens) - 1
        rows, used, kept = self._rows(boxes), 0, 0
        for row in rows:
            n = len(tokenizer.tokens(row))
            if used + n > budget:
                break
            used, kept = used + n, kept + 1
        if kept < len(rows):
            logger.debug("ocr: %d of %d text boxes fit %d tokens; the rest are dropped", kept, len(rows), budget)
        return tokenizer.encode(" ".join(rows[:kept]))


# -- captions ------------------------------------------------------------------------------------
class CaptionCodec(_TextCodec[str]):
    """Captions are the text itself; the tokenizer's normaliser lower-cases it."""

    def to_text(self, caption: str, rng: random.Random | None = None) -> str:
        if not isinstance(caption, str):
            raise DataError(f"caption must be a string, got {type(caption).__name__}")
        return caption

    def from_text(self, text: str) -> str:
        return text


CODECS: dict[str, _TextCodec] = {
    "caption": CaptionCodec(),
    "det": BoxCodec(),
    "color_palette": PaletteCodec(),
    "metadata": MetadataCodec(),
    "human_poses": HumanPoseCodec(),
    "sam_instance": SamInstanceCodec(),
    "keypoints": KeypointsCodec(),
    "ocr": OcrCodec(),
}
