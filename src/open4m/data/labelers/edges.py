"""Edge maps: Canny on the image, and SAM-style edges from an instance-mask modality."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Labeler
from ...errors import ConfigError


class CannyEdges(Labeler):
    """Canny edges (OpenCV) with thresholds set from the image's median intensity.

    Fixed thresholds miss edges on dark images and flood bright ones; tying them to the median
    keeps the edge density comparable across a dataset. Output: uint8 {0, 255} at the photo's size.

    `size` sets the scale of the edges: Canny runs on the photo shrunk to that short side and the map
    is enlarged back (nearest), so the edges are those a model seeing `size` pixels can see, one
    pixel thick at that scale. Why: a 640 px photo's one-pixel lines average away when its edge map
    is shrunk to a 64 px model's input (a world model's edge tokenizer knows binary maps only).
    """

    name = "canny_edge"
    ext = ".png"

    def __init__(self, sigma: float = 0.33, blur: int = 3, size: int | None = None) -> None:
        if not 0 < sigma < 1:
            raise ConfigError(f"sigma must be in (0, 1), got {sigma}")
        if size is not None and size < 8:
            raise ConfigError(f"the edge scale must be at least 8 pixels (a short side), got {size}")
        self.sigma, self.blur, self.size = sigma, blur, size

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        import cv2

        self.check(sample)
        rgb = np.ascontiguousarray(sample["rgb"], np.uint8)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        height, width = gray.shape
        if self.size is not None and min(height, width) > self.size:
            scale = self.size / min(height, width)
            gray = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA)
        if self.blur > 1:
            gray = cv2.GaussianBlur(gray, (self.blur, self.blur), 0)
        med = float(np.median(gray))
        lo, hi = int(max(0, (1 - self.sigma) * med)), int(min(255, (1 + self.sigma) * med))
        edges = cv2.Canny(gray, lo, max(hi, lo + 1))
        if edges.shape != (height, width):
            edges = cv2.resize(edges, (width, height), interpolation=cv2.INTER_NEAREST)
        return edges


def instance_boundaries(instance: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbour belongs to another instance id, as uint8 {0, 255}."""
    inst = np.asarray(instance)
    edge = np.zeros(inst.shape, bool)
    dy = inst[1:, :] != inst[:-1, :]
    dx = inst[:, 1:] != inst[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge.astype(np.uint8) * 255


class InstanceEdges(Labeler):
    """SAM-style edges: the boundaries of an instance-id map (SAM masks or any instance modality)."""

    name = "sam_edge"
    ext = ".png"

    def __init__(self, source: str = "instance") -> None:
        self.source = source
        self.requires = (source,)

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        self.check(sample)
        return instance_boundaries(sample[self.source])
