"""Aligned augmentation and per-modality normalisation of samples.

One crop and one flip are drawn per sample and applied to every image-like modality, so pixels
stay aligned across modalities; boxes (``det``, ``ocr``) and keypoints are re-projected through the
same crop, normals' x flips with the image. The crop is recorded as ``crop_settings`` = (top, left,
height, width, flip), the row format pre-tokenization stores, so tokens computed offline match the
crop seen online.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .codecs import image_role, is_aligned_image
from ..errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Crop:
    """A crop box in source pixels plus a horizontal flip, applied before resizing."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False

    def as_row(self) -> np.ndarray:
        """(top, left, height, width, flip) as int64, the pre-tokenization crop_settings row."""
        return np.array([self.top, self.left, self.height, self.width, int(self.flip)], np.int64)

    @classmethod
    def from_row(cls, row: Any) -> "Crop":
        top, left, h, w, flip = (int(v) for v in row)
        return cls(top, left, h, w, bool(flip))


def center_crop(height: int, width: int) -> Crop:
    """The largest centred square (the evaluation crop, and row 0 of pre-tokenized crops)."""
    side = min(height, width)
    return Crop((height - side) // 2, (width - side) // 2, side, side, False)


def random_resized_crop(
    height: int, width: int, rng: np.random.Generator, scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_prob: float = 0.5,
) -> Crop:
    """A crop covering a `scale` fraction of the area with aspect ratio in `ratio` (log-uniform).

    After 10 rejected draws it falls back to the centre crop clamped to `ratio`, the usual rule.
    """
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ConfigError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    flip = bool(rng.random() < flip_prob)
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_r))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return Crop(int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w, flip)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return Crop((height - h) // 2, (width - w) // 2, h, w, flip)


def _resize(arr: np.ndarray, crop: Crop, size: int, role: str | None) -> np.ndarray:
    import cv2

    patch = arr[crop.top:crop.top + crop.height, crop.left:crop.left + crop.width]
    if role in ("classmap", "depth"):  # ids must stay ids; depth must not invent mid-air values
        mode = cv2.INTER_NEAREST
    elif role in ("edge", "unit") and min(patch.shape[:2]) > size:
        mode = cv2.INTER_AREA  # shrinking a thin edge map: average (as Pillow's resize does), never skip an edge
    else:
        mode = cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=mode)
    if role == "normal":
        out = out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-6) * (np.abs(out).sum(-1, keepdims=True) > 0)
        out = out.astype(np.float32)
    if crop.flip:
        out = out[:, ::-1].copy()
        if role == "normal":
            out[..., 0] *= -1
    return out


def _crop_point(x: float, y: float, crop: Crop, orig_h: int, orig_w: int) -> tuple[float, float]:
    """A normalised source-image point in normalised crop coordinates (unclipped, flipped)."""
    px, py = (x * orig_w - crop.left) / crop.width, (y * orig_h - crop.top) / crop.height
    return (1.0 - px if crop.flip else px), py


def _crop_box(box: Any, crop: Crop, orig_h: int, orig_w: int) -> list[float] | None:
    """A normalised box re-projected into the crop, clipped and flipped; None when no area is left."""
    x0, y0, x1, y1 = box
    px0, px1 = (x0 * orig_w - crop.left) / crop.width, (x1 * orig_w - crop.left) / crop.width
    py0, py1 = (y0 * orig_h - crop.top) / crop.height, (y1 * orig_h - crop.top) / crop.height
    px0, px1, py0, py1 = (min(max(v, 0.0), 1.0) for v in (px0, px1, py0, py1))
    if px1 <= px0 or py1 <= py0:
        return None
    if crop.flip:
        px0, px1 = 1.0 - px1, 1.0 - px0
    return [px0, py0, px1, py1]


def crop_boxes(det: Mapping[str, Any], crop: Crop, orig_h: int, orig_w: int) -> dict[str, Any]:
    """Boxes (normalised to the source image) re-projected into the crop, clipped, flipped.

    Boxes left with no area inside the crop are dropped; other fields of each instance are kept.
    """
    out = []
    for inst in det.get("instances", []):
        box = _crop_box(inst["boxes"], crop, orig_h, orig_w)
        if box is not None:
            out.append({**inst, "boxes": box})
    return {**det, "instances": out}


def crop_text_boxes(lines: Any, crop: Crop, orig_h: int, orig_w: int) -> list[dict[str, Any]]:
    """``ocr`` labels (``[{"box", "text", "score"}]``) re-projected like :func:`crop_boxes`; text is kept."""
    out = []
    for line in lines:
        box = _crop_box(line["box"], crop, orig_h, orig_w)
        if box is not None:
            out.append({**line, "box": box})
    return out


def crop_keypoints(persons: Any, crop: Crop, orig_h: int, orig_w: int) -> list[dict[str, Any]]:
    """``keypoints`` labels re-projected into the crop: boxes like :func:`crop_boxes`, keypoints clipped.

    A keypoint that leaves the crop gets visibility 0; a flip mirrors x and swaps the person's left and
    right keypoints (:data:`~open4m.tokenizers.sequences.BODY_KEYPOINT_FLIP`), so index 11 stays the
    left shoulder. Persons whose box leaves the crop are dropped.
    """
    from ..tokenizers.sequences import BODY_KEYPOINT_FLIP

    out = []
    for person in persons:
        box = _crop_box(person["box"], crop, orig_h, orig_w)
        if box is None:
            continue
        points = []
        for x, y, vis in person["keypoints"]:
            px, py = _crop_point(x, y, crop, orig_h, orig_w)
            inside = 0.0 <= px <= 1.0 and 0.0 <= py <= 1.0
            points.append([min(max(px, 0.0), 1.0), min(max(py, 0.0), 1.0), vis if inside else 0.0])
        if crop.flip and len(points) == len(BODY_KEYPOINT_FLIP):
            points = [points[j] for j in BODY_KEYPOINT_FLIP]
        out.append({**person, "box": box, "keypoints": points})
    return out


def clean_caption(caption: Any) -> str:
    """The caption text with whitespace collapsed (captions from the wild carry tabs and newlines).

    JSON captions may hold a list (one per pre-tokenized crop: the first, the centre crop's, is
    used) or a dict with a ``caption`` field, as in the official datasets.
    """
    if isinstance(caption, list):
        if not caption:
            raise DataError("empty caption list")
        caption = caption[0]
    if isinstance(caption, dict):
        if "caption" not in caption:
            raise DataError(f"caption dict has no 'caption' field: keys {sorted(caption)}")
        caption = caption["caption"]
    return re.sub(r"\s+", " ", str(caption)).strip()


def augment(sample: Mapping[str, Any], crop: Crop, size: int) -> dict[str, Any]:
    """Apply one crop + flip + resize to every image-like modality, boxes and captions of a sample."""
    images = {m: v for m, v in sample.items() if is_aligned_image(m) and isinstance(v, np.ndarray)}
    if not images:
        raise DataError(f"sample has no image-like modality to crop; modalities: {sorted(sample)}")
    shapes = {m: v.shape[:2] for m, v in images.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"image-like modalities of one sample must share a size to be cropped together: {shapes}")
    h, w = next(iter(shapes.values()))
    if crop.top < 0 or crop.left < 0 or crop.top + crop.height > h or crop.left + crop.width > w:
        raise DataError(f"crop {crop} does not fit the {h}x{w} sample; give a crop inside the image (or the "
                        "crop that was recorded for this image size)")
    out = dict(sample)
    for m, v in images.items():
        out[m] = _resize(v, crop, size, image_role(m))
    if "det" in sample:
        out["det"] = crop_boxes(sample["det"], crop, h, w)
    if "keypoints" in sample:
        out["keypoints"] = crop_keypoints(sample["keypoints"], crop, h, w)
    if "ocr" in sample:
        out["ocr"] = crop_text_boxes(sample["ocr"], crop, h, w)
    if "caption" in sample:
        out["caption"] = clean_caption(sample["caption"])
    out["crop_settings"] = crop.as_row()
    return out


def _standardise_depth(depth: np.ndarray, trim: float = 0.1) -> np.ndarray:
    """Robust per-image standardisation: mean/var of the valid values between the 10% and 90% quantiles."""
    valid = depth[depth > 0]
    if valid.size < 2:
        return np.zeros_like(depth, np.float32)
    lo, hi = np.quantile(valid, [trim, 1 - trim])
    core = valid[(valid >= lo) & (valid <= hi)]
    return ((depth - core.mean()) / math.sqrt(core.var() + 1e-6)).astype(np.float32)


def unit_map(value: np.ndarray) -> torch.Tensor:
    """A one-channel map (edges, soft maps, masks: uint8 0..255, bool, or float in [0, 1]) as float (1, H, W) in [0, 1]."""
    arr = np.ascontiguousarray(np.squeeze(value) if value.ndim == 3 and value.shape[-1] == 1 else value)
    if arr.ndim != 2:
        raise DataError(f"a one-channel map must be (H, W), got shape {value.shape}")
    x = torch.from_numpy(arr)
    return (x.float() / 255 if arr.dtype == np.uint8 else x.float())[None]


def instance_box_crop(mask: np.ndarray) -> np.ndarray:
    """One instance's mask cut to the box of its pixels, the frame the SAM instance tokenizer encodes.

    Officially each instance is rasterised into a 64x64 mask of its own bounding box; a user's SAM
    output is usually a full-frame mask, so it is cropped to the box here (then resized by the
    tokenizer). A mask with no pixels set is returned whole.
    """
    arr = np.asarray(mask)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    ys, xs = np.nonzero(arr)
    if not len(ys):
        return arr
    return arr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def to_tensors(sample: Mapping[str, Any], target: str = "fourm", *, pixel_mean: Sequence[float] | None = None,
               pixel_std: Sequence[float] | None = None) -> dict[str, Any]:
    """Image-like modalities as normalised torch tensors (C, H, W); everything else unchanged.

    `target="fourm"` normalises RGB with the pixel modality's `pixel_mean` / `pixel_std` when it
    declares them (a world model's are 0.5: [-1, 1]), else ImageNet's (the 4M pixel input); `"tokenizer"`
    maps it to [-1, 1] (what the VQ tokenizers see). Depth gets robust standardisation plus a
    ``mask_valid``; normals are already unit vectors in [-1, 1]; class maps become long (H, W);
    edges, soft maps (``hed_edge``, ``person_mask``) and instance masks float (1, H, W) in [0, 1]
    (never standardised: an edge map is mostly zeros, its 10-90 % quantiles are all 0).
    """
    if target not in ("fourm", "tokenizer"):
        raise ConfigError(f"target must be 'fourm' or 'tokenizer', got {target!r}")
    out = dict(sample)
    for m, v in sample.items():
        role = image_role(m)
        if role is None or not isinstance(v, np.ndarray):
            continue
        if role == "rgb":
            x = torch.from_numpy(np.ascontiguousarray(v)).permute(2, 0, 1).float() / 255
            if target == "fourm":
                mean = torch.tensor(pixel_mean or IMAGENET_MEAN, dtype=x.dtype)[:, None, None]
                x = (x - mean) / torch.tensor(pixel_std or IMAGENET_STD, dtype=x.dtype)[:, None, None]
            else:
                x = x * 2 - 1
        elif role == "depth":
            x = torch.from_numpy(_standardise_depth(v))[None]
            out["mask_valid"] = torch.from_numpy(v > 0)[None]
        elif role == "normal":
            x = torch.from_numpy(np.ascontiguousarray(v, np.float32)).permute(2, 0, 1)
        elif role in ("edge", "unit", "mask"):
            x = unit_map(v)
        else:
            x = torch.from_numpy(np.ascontiguousarray(v)).long()
        out[m] = x
    return out


class AlignedTransform:
    """Random (training) or centred (evaluation) crop + flip + resize, then normalisation.

    Randomness comes from the `rng` passed per call, so a data loader can seed it per sample and
    reproduce every crop.
    """

    def __init__(self, size: int = 224, train: bool = True, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_prob: float = 0.5,
                 target: str | None = "fourm") -> None:
        self.size, self.train, self.scale, self.ratio, self.flip_prob, self.target = size, train, scale, ratio, flip_prob, target

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        h, w = next((v.shape[:2] for m, v in sample.items() if is_aligned_image(m) and isinstance(v, np.ndarray)),
                    (0, 0))
        if not h:
            raise DataError(f"sample has no image-like modality to crop; modalities: {sorted(sample)}")
        if "crop_settings" in sample:  # a pre-tokenized sample dictates its crop
            crop = Crop.from_row(sample["crop_settings"])
        elif self.train:
            crop = random_resized_crop(h, w, rng or np.random.default_rng(), self.scale, self.ratio, self.flip_prob)
        else:
            crop = center_crop(h, w)
        out = augment(sample, crop, self.size)
        return to_tensors(out, self.target) if self.target else out
