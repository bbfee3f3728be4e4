"""`synthetic`: random token scenes that need no data and no tokenizer (smoke tests, benchmarks, CI)."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
import torch

from .. import modalities
from ..errors import ConfigError
from ..modalities import Kind

__all__ = ["SyntheticTokens", "build"]


class SyntheticTokens(torch.utils.data.Dataset):
    """Random scenes whose modalities all derive from one hidden region map.

    Each sample draws a few rectangles of K region classes on the token grid; an image-token
    modality writes a fixed per-modality code of each cell's class, raw pixels paint a colour per
    class, a sequence lists the classes present (largest first), boxes list one chunk per
    rectangle. Predicting one modality from another is therefore learnable, and a tiny model's
    losses fall within a few hundred steps — a smoke test of the whole pipeline without any data
    or tokenizer.
    """

    NUM_CLASSES = 8
    _WORDS = 1000  # sequence content ids start here, clear of [PAD]/[EOS]/sentinels

    def __init__(self, modality_names: Sequence[str], num_samples: int, seed: int = 0, image_size: int = 224) -> None:
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        self.mods = modalities.get_many(modality_names)
        self.names = list(modality_names)
        self.num_samples, self.seed, self.image_size = num_samples, seed, image_size
        self.codes: dict[str, np.ndarray] = {}
        for name, mod in self.mods.items():
            g = np.random.default_rng(zlib.crc32(name.encode()))  # fixed per modality, not per run
            if mod.kind is Kind.IMAGE_TOKENS:
                self.codes[name] = g.choice(mod.vocab_size, self.NUM_CLASSES, replace=False)
            elif mod.kind is Kind.PIXELS:
                self.codes[name] = g.uniform(-1.5, 1.5, (self.NUM_CLASSES, mod.num_channels)).astype(np.float32)
            elif mod.kind is Kind.SEQUENCE_EMBEDDING:
                self.codes[name] = g.standard_normal((self.NUM_CLASSES, mod.orig_emb_dim)).astype(np.float32)
            elif mod.kind is not Kind.SEQUENCE:
                raise ConfigError(f"synthetic data cannot produce {mod.kind.value} modality {name!r}; use its tok_ version")

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        res = 32
        z = np.full((res, res), rng.integers(self.NUM_CLASSES))
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.integers(0, res - 4, 2)
            x1, y1 = x0 + rng.integers(4, res - x0 + 1), y0 + rng.integers(4, res - y0 + 1)
            cls = int(rng.integers(self.NUM_CLASSES))
            z[y0:y1, x0:x1] = cls
            boxes.append((cls, int(x0), int(y0), int(x1), int(y1)))
        sample: dict[str, Any] = {}
        for name, mod in self.mods.items():
            if mod.kind is Kind.IMAGE_TOKENS:
                h, w = mod.grid_size(self.image_size)
                sample[name] = torch.from_numpy(self.codes[name][_resize(z, h, w)].reshape(-1).astype(np.int64))
            elif mod.kind is Kind.PIXELS:
                size = mod.image_size or self.image_size
                pix = self.codes[name][_resize(z, size, size)].transpose(2, 0, 1)
                sample[name] = torch.from_numpy(np.ascontiguousarray(pix))
            elif mod.kind is Kind.SEQUENCE_EMBEDDING:
                present = _by_area(z)
                sample[name] = torch.from_numpy(self.codes[name][present])
            elif name == "det":
                sample[name] = [[self._WORDS + c, self._WORDS + 100 + x0, self._WORDS + 200 + y0,
                                 self._WORDS + 300 + x1, self._WORDS + 400 + y1] for c, x0, y0, x1, y1 in boxes]
            else:
                sample[name] = [self._WORDS + int(c) for c in _by_area(z)]
        return sample


def _resize(z: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize of a class map."""
    rows = np.arange(h) * z.shape[0] // h
    cols = np.arange(w) * z.shape[1] // w
    return z[rows][:, cols]


def _by_area(z: np.ndarray) -> np.ndarray:
    counts = np.bincount(z.reshape(-1))
    present = np.flatnonzero(counts)
    return present[np.argsort(-counts[present], kind="stable")]


def build(arg: str | None, *, modality_names: Sequence[str], num_samples: int = 1024, seed: int = 0,
          image_size: int = 224) -> SyntheticTokens:
    """`synthetic`: `num_samples` scenes; validation differs by `seed`."""
    if arg:
        raise ConfigError(f"the synthetic source takes no argument, got 'synthetic:{arg}'")
    return SyntheticTokens(modality_names, num_samples, seed, image_size)
