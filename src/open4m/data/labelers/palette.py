"""Colour palettes by k-means on pixels, in the official 4M-21 JSON form."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .base import Labeler
from ...errors import ConfigError

MAX_COLORS = 7


def weighted_colors(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colours at 5 bits per channel (their mean exact colour) and their pixel counts.

    Clustering a few hundred weighted colours instead of every pixel makes k-means cheap
    without changing its result beyond the quantisation step.
    """
    px = pixels.reshape(-1, 3).astype(np.int64)
    q = px >> 3
    _, inv, counts = np.unique((q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2], return_inverse=True, return_counts=True)
    means = np.stack([np.bincount(inv, weights=px[:, c]) for c in range(3)], 1) / counts[:, None]
    return means, counts.astype(np.float64)


def kmeans_palette(
    points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator, iters: int = 15
) -> np.ndarray:
    """k weighted cluster centres of (N, 3) colours, ordered by cluster weight (largest first).

    Weighted k-means++ seeding from an explicit generator makes palettes reproducible; fewer
    distinct colours than k simply yields fewer centres.
    """
    k = min(k, len(points))
    sq = (points**2).sum(1)

    def dist2(c: np.ndarray) -> np.ndarray:
        return np.maximum(sq[:, None] - 2 * points @ c.T + (c**2).sum(1)[None], 0)

    centres = points[[rng.choice(len(points), p=weights / weights.sum())]]
    for _ in range(1, k):
        d2 = dist2(centres).min(1) * weights
        if d2.sum() <= 0:
            break
        centres = np.vstack([centres, points[rng.choice(len(points), p=d2 / d2.sum())]])
    for _ in range(iters):
        assign = dist2(centres).argmin(1)
        mass = np.bincount(assign, weights=weights, minlength=len(centres))
        sums = np.stack([np.bincount(assign, weights=weights * points[:, c], minlength=len(centres)) for c in range(3)], 1)
        moved = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-12)[:, None], centres)
        if np.allclose(moved, centres):
            break
        centres = moved
    mass = np.bincount(dist2(centres).argmin(1), weights=weights, minlength=len(centres))
    order = np.argsort(-mass, kind="stable")
    return np.clip(np.round(centres[order[mass[order] > 0]]), 0, 255).astype(np.uint8)


class ColorPalette(Labeler):
    """Palettes of 1..7 colours per image: `[{"1": [[r,g,b]], ..., "7": [[r,g,b] x 7]}]`.

    All k are stored because the 4M-21 transform draws k per sample at training time.
    """

    name = "color_palette"
    ext = ".json"

    def __init__(self, max_colors: int = MAX_COLORS, seed: int = 0) -> None:
        if not 1 <= max_colors <= MAX_COLORS:
            raise ConfigError(f"max_colors must be in 1..{MAX_COLORS}, got {max_colors}")
        self.max_colors, self.seed = max_colors, seed

    def __call__(self, sample: Mapping[str, Any]) -> list[dict[str, list[list[int]]]]:
        self.check(sample)
        points, weights = weighted_colors(np.asarray(sample["rgb"], np.uint8))
        rng = np.random.default_rng(self.seed)
        return [{str(k): kmeans_palette(points, weights, k, rng).tolist() for k in range(1, self.max_colors + 1)}]
