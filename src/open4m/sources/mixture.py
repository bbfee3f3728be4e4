"""A weighted mixture of sources: every sample drawn from one part with probability ∝ its weight.

One mixture, two forms, chosen by :func:`mixture` from its parts:

- every part map-style -> :class:`MapMixture`, itself map-style and exactly resumable: item k is a
  pure function of (seed, k) (a seeded draw of the part, then of a sample in it); its length is
  the parts' total;
- any part a stream (shards, a text corpus) -> :class:`StreamMixture`, an endless stream seeded per
  rank and DataLoader worker; map-style parts are read in seeded random orders and restart when
  exhausted, so a small part is revisited rather than starving the mix.

Both tag each sample with ``"__source__"`` (the part's index), so losses can be tracked per part,
and share the weights, their checks and the draw of a part (:class:`_Weighted`).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import is_map_style, stream_slot
from .registry import build_source

__all__ = ["mixture", "MapMixture", "StreamMixture", "build", "ENTRY_KEYS"]

ENTRY_KEYS = ("source", "weight", "modalities", "folders", "num_samples")


class _Weighted:
    """Parts, normalised weights and the seeded draw of a part: what both forms share."""

    def __init__(self, sources: Sequence[Any], weights: Sequence[float], seed: int = 0) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if len(sources) != len(w) or not len(w):
            raise ConfigError(f"need one weight per source; got {len(sources)} sources and {len(w)} weights")
        if (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"source weights must be >= 0 with a positive sum, got {list(weights)}")
        self.sources, self.probs, self.seed = list(sources), w / w.sum(), seed

    def _pick(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self.sources), p=self.probs))

    @staticmethod
    def _tagged(sample: Mapping[str, Any], part: int) -> dict[str, Any]:
        return {**sample, "__source__": part}


class MapMixture(_Weighted, torch.utils.data.Dataset):
    """Map-style parts as one map-style source; item k is a pure function of (seed, k)."""

    def __init__(self, sources: Sequence[Any], weights: Sequence[float], seed: int = 0) -> None:
        super().__init__(sources, weights, seed)
        empty = [i for i, src in enumerate(self.sources) if len(src) == 0]
        if empty:
            raise DataError(f"mixture sources {empty} hold no samples")

    def __len__(self) -> int:
        return sum(len(src) for src in self.sources)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 0x5EED, index])
        part = self._pick(rng)
        src = self.sources[part]
        return self._tagged(src[int(rng.integers(len(src)))], part)


class StreamMixture(_Weighted, torch.utils.data.IterableDataset):
    """An endless stream over parts of which at least one is a stream; seeded per rank and worker."""

    splits_by_rank = True  # each rank and worker draws its own seeded stream

    def _iterate(self, part: int, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        src = self.sources[part]
        while True:
            empty = True
            items: Iterable = (src[i] for i in rng.permutation(len(src))) if is_map_style(src) else src
            for item in items:
                empty = False
                yield item
            if empty:
                raise DataError(f"mixture source {part} yielded no samples")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng([self.seed, stream_slot()[0]])
        streams = [self._iterate(k, rng) for k in range(len(self.sources))]
        while True:
            part = self._pick(rng)
            yield self._tagged(next(streams[part]), part)


def mixture(sources: Sequence[Any], weights: Sequence[float], seed: int = 0) -> MapMixture | StreamMixture:
    """The weighted mixture of `sources`: map-style (exactly resumable) when every part is, a stream otherwise."""
    if all(is_map_style(s) for s in sources):
        return MapMixture(sources, weights, seed)
    return StreamMixture(sources, weights, seed)


def build(entries: Sequence[Any], *, family: str = "tokens", modality_names: Sequence[str] | None = None,
          num_samples: int = 1024, seed: int = 0, folders: Mapping[str, str] | None = None,
          **options: Any) -> MapMixture | StreamMixture:
    """`data.sources: [{source, weight, modalities, folders, num_samples}, ...]`: the parts, built and mixed.

    A part may hold fewer modalities than the recipe (a caption-only corpus): its samples are then
    masked over what they have (`DirichletMasking(allow_missing=True)`). Part i is built with seed
    `seed + i`.
    """
    if not entries:
        raise ConfigError("data.sources is empty; give at least one {source, weight} entry")
    built, weights = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "source" not in entry:
            raise ConfigError(f"data.sources[{i}] must be a mapping with a `source` (and `weight`, optionally "
                              f"`modalities`, `folders`, `num_samples`), got {entry!r}")
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise ConfigError(f"data.sources[{i}] has unknown keys {unknown}; use {', '.join(ENTRY_KEYS)}")
        mods = list(entry.get("modalities") or modality_names or [])
        extra = [m for m in mods if modality_names is not None and m not in modality_names]
        if extra:
            raise ConfigError(f"data.sources[{i}] lists {extra}, which data.modalities lacks; add them there")
        part_options = dict(options, seed=seed + i, num_samples=int(entry.get("num_samples", num_samples)),
                            folders={**(folders or {}), **entry.get("folders", {})})
        if mods:
            part_options["modality_names"] = mods
        built.append(build_source(str(entry["source"]), family=family, **part_options))
        weights.append(float(entry.get("weight", 1.0)))
    return mixture(built, weights, seed)
