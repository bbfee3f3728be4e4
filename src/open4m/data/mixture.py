"""Dataset mixtures: several aligned datasets sampled with weights, including text-only corpora.

4M-21 co-trains on image datasets and a text corpus; here each source is any iterable of
samples (a FolderDataset, a ShardDataset, a :class:`TextCorpus`), and every draw picks a source
with probability proportional to its weight. Sources restart when exhausted, so a small source is
revisited rather than starving the mix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch


def stream_slot() -> tuple[int, int]:
    """(this stream's index, number of parallel streams) over distributed ranks x DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = torch.utils.data.get_worker_info()
    wid, nw = (info.id, info.num_workers) if info else (0, 1)
    return rank * nw + wid, world * nw


class TextCorpus(torch.utils.data.IterableDataset):
    """Captions from `.txt` files (one text per non-empty line) or `.jsonl` files (a `text` field).

    Samples are ``{"__key__": "<file>:<line>", modality: text}``: a sample with only a caption, as
    the text-only part of a mixture. Lines are dealt round-robin to ranks and workers.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], modality: str = "caption", field: str = "text") -> None:
        super().__init__()
        items = [paths] if isinstance(paths, (str, Path)) else list(paths)
        files: list[Path] = []
        for p in map(Path, items):
            files += sorted(q for q in p.rglob("*") if q.suffix in (".txt", ".jsonl")) if p.is_dir() else [p]
        missing = [str(f) for f in files if not f.is_file()]
        if missing or not files:
            raise FileNotFoundError(f"text corpus files not found: {missing or items}")
        self.files, self.modality, self.field = files, modality, field

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots = stream_slot()
        n = 0
        for f in self.files:
            with f.open(encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    line = line.strip()
                    if not line:
                        continue
                    n += 1
                    if (n - 1) % slots != slot:
                        continue
                    if f.suffix == ".jsonl":
                        try:
                            line = str(json.loads(line)[self.field])
                        except (json.JSONDecodeError, KeyError, TypeError) as err:
                            raise ValueError(f"{f}:{i + 1}: expected a JSON object with a {self.field!r} field ({err})") from err
                    yield {"__key__": f"{f.name}:{i + 1}", self.modality: line}


class Mixture(torch.utils.data.IterableDataset):
    """An endless stream drawing each sample from one of `sources` with probability ∝ `weights`.

    Each sample gets ``"__source__"`` (the source's index) so losses can be tracked per source.
    Map-style sources are iterated in a seeded random order; the generator is seeded per rank and
    worker, so parallel streams differ.
    """

    def __init__(self, sources: Sequence[Iterable[dict[str, Any]]], weights: Sequence[float], seed: int = 0) -> None:
        super().__init__()
        if len(sources) != len(weights) or not sources:
            raise ValueError(f"need one weight per source; got {len(sources)} sources and {len(weights)} weights")
        w = np.asarray(weights, np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
        self.sources, self.probs, self.seed = list(sources), w / w.sum(), seed

    def _iterate(self, k: int, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        src = self.sources[k]
        while True:
            empty = True
            if isinstance(src, torch.utils.data.IterableDataset) or not hasattr(src, "__getitem__"):
                items: Iterable = src
            else:
                items = (src[i] for i in rng.permutation(len(src)))
            for item in items:
                empty = False
                yield item
            if empty:
                raise ValueError(f"mixture source {k} yielded no samples")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng([self.seed, stream_slot()[0]])
        streams = [self._iterate(k, rng) for k in range(len(self.sources))]
        while True:
            k = int(rng.choice(len(streams), p=self.probs))
            sample = dict(next(streams[k]))
            sample["__source__"] = k
            yield sample
