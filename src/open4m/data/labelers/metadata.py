"""Image metadata: every 4M-21 field computable from the image and the aligned modalities.

Field names match the official metadata keys (see the spec's sequences.md); the values are raw
measurements, the tokenizer bins them. Fields whose source modality is absent are left out, never
guessed. `watermark_score` and `aesthetic_score` need trained predictors and are not computed.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np

from ..synthetic.scene import SEMSEG_CLASSES, SHAPES
from .base import Labeler
from ...errors import ConfigError

OCCLUSION_JUMP = 0.1  # a relative depth jump above 10% between neighbours is an occlusion edge


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003): spread and mean of the opponent channels rg and yb."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def gray_entropy(gray: np.ndarray) -> float:
    """Shannon entropy (bits) of the 256-bin grey-level histogram."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def geometric_complexity(normal: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Spread of surface normals: 1 - |mean unit normal| (0 for a plane, -> 1 for all directions)."""
    n = normal.reshape(-1, 3).astype(np.float64)
    length = np.linalg.norm(n, axis=1)
    keep = length > 0.5 if valid is None else (valid.ravel() & (length > 0.5))
    if not keep.any():
        return 0.0
    unit = n[keep] / length[keep, None]
    return float(1.0 - np.linalg.norm(unit.mean(0)))


def occlusion_score(depth: np.ndarray) -> float:
    """Fraction of valid pixels on a depth discontinuity (relative jump > OCCLUSION_JUMP)."""
    d = depth.astype(np.float64)
    valid = d > 0
    if not valid.any():
        return 0.0
    edge = np.zeros(d.shape, bool)
    for a, b in ((d[1:, :], d[:-1, :]), (d[:, 1:], d[:, :-1])):
        both = (a > 0) & (b > 0)
        jump = both & (np.abs(a - b) > OCCLUSION_JUMP * np.minimum(a, b))
        if a.shape[0] != d.shape[0]:
            edge[1:, :] |= jump
        else:
            edge[:, 1:] |= jump
    return float((edge & valid).sum() / valid.sum())


class ImageMetadata(Labeler):
    """Metadata JSON per sample from rgb plus whatever of caption/det/instance/semseg/normal/depth exists.

    `class_names` names the semantic classes of the `semseg` modality; `walkable_classes` and
    `thing_classes` pick the ones counted by walkability and objectness. The defaults describe the
    procedural world.
    """

    name = "metadata"
    ext = ".json"
    requires = ("rgb",)
    optional = ("caption", "det", "instance", "semseg", "normal", "depth")

    def __init__(
        self,
        class_names: Sequence[str] = SEMSEG_CLASSES,
        walkable_classes: Sequence[str] = ("floor",),
        thing_classes: Sequence[str] = SHAPES,
        ignore_classes: Sequence[str] = ("background",),
    ) -> None:
        names = list(class_names)
        for group in (walkable_classes, thing_classes, ignore_classes):
            unknown = set(group) - set(names)
            if unknown:
                raise ConfigError(f"classes {sorted(unknown)} are not in class_names {names}")
        self.walkable = np.array([names.index(c) for c in walkable_classes], np.int64)
        self.things = np.array([names.index(c) for c in thing_classes], np.int64)
        self.ignore = np.array([names.index(c) for c in ignore_classes], np.int64)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, float | int]:
        import cv2

        self.check(sample)
        rgb = np.ascontiguousarray(sample["rgb"], np.uint8)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        meta: dict[str, float | int] = {
            "original_width": int(rgb.shape[1]), "original_height": int(rgb.shape[0]),
            "colorfulness": colorfulness(rgb), "brightness": float(gray.mean()),
            "contrast": float(gray.std()), "saturation": float(hsv[..., 1].mean()),
            "entropy": gray_entropy(gray),
        }
        if "caption" in sample:
            text = str(sample["caption"]).strip()
            meta["caption_n_chars"] = len(text)
            meta["caption_n_words"] = len(text.split())
            meta["caption_n_sentences"] = len([s for s in re.split(r"[.!?]+", text) if s.strip()])
        if "det" in sample:
            names = [inst["class_name"] for inst in sample["det"].get("instances", [])]
            meta["n_coco_instances"] = len(names)
            meta["coco_instance_diversity"] = len(set(names))
            meta["n_humans"] = sum(n == "person" for n in names)
        if "instance" in sample:
            ids = np.unique(sample["instance"])
            meta["n_sam_instances"] = int((ids != 0).sum())
        if "semseg" in sample:
            seg = np.asarray(sample["semseg"]).astype(np.int64)
            valid = ~np.isin(seg, self.ignore)
            total = max(int(valid.sum()), 1)
            meta["walkability"] = float(np.isin(seg, self.walkable).sum() / total)
            meta["objectness"] = float(np.isin(seg, self.things).sum() / total)
            meta["semantic_diversity"] = int(len(np.setdiff1d(np.unique(seg), self.ignore)))
        if "normal" in sample:
            meta["geometric_complexity"] = geometric_complexity(np.asarray(sample["normal"]))
        if "depth" in sample:
            meta["occlusion_score"] = occlusion_score(np.asarray(sample["depth"]))
        return meta
