"""Sequence modalities as users store them (JSON / TXT) -> what their codecs encode, per crop.

One place that knows the on-disk form of every sequence modality and which of them move with the
image crop, shared by `open4m tokenize` (:mod:`open4m.data.pretokenize`) and any loader:

- crop-dependent (boxes re-projected through the crop, dropped when they leave it): ``det``
  (``{"instances": [{"boxes", "class_name", "score"}]}``), ``keypoints`` and ``ocr`` (their labelers'
  JSON lists);
- crop-independent: ``caption`` (text, or a JSON list of per-crop captions / ``{"caption": ...}``),
  ``color_palette`` (``[{"1": [[r, g, b]], ..., "7": [...]}]``: one size drawn per row, as the
  official transform does), ``metadata`` (a JSON object of fields; their order drawn per row),
  ``human_poses`` (a list of ``{"box", "pose_codes", "global_orient", "camera", "betas"}``) and
  ``sam_instance`` (a list of ``{"point": [x, y], "instances": [{"box": [x0, y0, x1, y1],
  "codes": [16 ids]}]}`` in pixels of the 224 crop, the codec's own structure).
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from ..errors import DataError
from ..tokenizers.sequences import json_list, numbers
from .transforms import Crop, clean_caption, crop_boxes, crop_keypoints, crop_text_boxes

__all__ = ["CROP_DEPENDENT", "crop_sequence", "sequence_input"]

#: Sequence modalities whose content moves with the image crop (normalised boxes / points).
CROP_DEPENDENT: frozenset[str] = frozenset({"det", "keypoints", "ocr"})


def crop_sequence(name: str, value: Any, crop: Crop | None, height: int, width: int) -> Any:
    """``value`` of a crop-dependent modality re-projected into ``crop`` of an ``height x width`` image
    (the same functions the aligned transform applies); anything else unchanged."""
    if crop is None or name not in CROP_DEPENDENT:
        return value
    if name == "det":
        return crop_boxes(value if isinstance(value, Mapping) else {"instances": value}, crop, height, width)
    if name == "keypoints":
        return crop_keypoints(value, crop, height, width)
    return crop_text_boxes(value, crop, height, width)


def _fields(item: Any, keys: tuple[str, ...], name: str, n: int) -> list[Any]:
    if not isinstance(item, Mapping) or any(k not in item for k in keys):
        raise DataError(f"{name}: entry {n} must be a JSON object with {list(keys)}, got {item!r:.80}")
    return [item[k] for k in keys]


def sequence_input(name: str, value: Any, rng: random.Random | None = None) -> Any:
    """The decoded file of sequence modality ``name`` -> its codec's input (``rng`` draws palette sizes and
    metadata orders where the official transform randomises; without one the choice is canonical)."""
    from ..tokenizers.sequences import HumanPose, SamInstance, SamQuery
    from .loader import codec_input

    if name == "human_poses":
        keys = ("box", "pose_codes", "global_orient", "camera", "betas")
        return [HumanPose(*(numbers(v, name, f"entry {n} {k!r}", integers=k == "pose_codes")
                            for k, v in zip(keys, _fields(h, keys, name, n))))
                for n, h in enumerate(json_list(value, name, "persons"))]
    if name == "sam_instance":
        out = []
        for n, q in enumerate(json_list(value, name, "queries")):
            point, instances = _fields(q, ("point", "instances"), name, n)
            found = tuple(SamInstance(numbers(box, name, f"entry {n} box", 4, integers=True),  # type: ignore[arg-type]
                                      numbers(codes, name, f"entry {n} codes", integers=True))
                          for box, codes in (_fields(i, ("box", "codes"), name, n)
                                             for i in json_list(instances, name, f"entry {n} instances")))
            out.append(SamQuery(numbers(point, name, f"entry {n} point", 2, integers=True), found))  # type: ignore[arg-type]
        return out
    if name == "caption":  # a JSON list of per-crop captions or {"caption": ...}, as the official datasets hold
        value = clean_caption(value)
    return codec_input(name, value, rng)  # caption, det, color_palette, metadata (keypoints, ocr: the JSON itself)
