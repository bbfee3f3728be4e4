"""Approximate nearest-neighbour search over a gallery with FAISS (the optional extra `open4m[faiss]`).

The exact search of `GalleryIndex` is one matrix product: every query touches every gallery vector,
which is right up to a few hundred thousand items and slow past that. For galleries of millions the
index can carry a FAISS structure built once by `open4m index --approximate`:

- `ivf` (`IndexIVFFlat`): the vectors are clustered into `lists` cells by k-means; a query scans only
  the `probe` nearest cells. Fast to build, memory = the vectors plus one id per vector.
- `hnsw` (`IndexHNSWFlat`): a navigable small-world graph with `links` neighbours per vector; a query
  walks it with a beam of `probe` candidates. No training, the best recall for its speed, slower to
  build, memory = the vectors plus the graph (about 2 x links x 4 bytes per vector).

Both rank by inner product on the L2-normalised vectors, i.e. cosine, like the exact search. The FAISS
structure is kept in the index file as bytes (`faiss.serialize_index`, FAISS's own binary layout, never
pickle) and rebuilt from them on first use; a file written with it still answers exactly (`exact=True`)
without FAISS installed.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "ApproximateIndex", "require_faiss", "check_settings", "default_lists"]

KINDS = ("ivf", "hnsw")
_INSTALL = "pip install 'open4m[faiss]'"


def require_faiss(why: str = "approximate search") -> Any:
    """The `faiss` module, or a one-line error naming the extra to install."""
    try:
        import faiss
    except ImportError:
        raise ConfigError(f"{why} needs FAISS, which is not installed: {_INSTALL} (or search exactly, the "
                          "default)") from None
    return faiss


def check_settings(kind: str, *, lists: int | None = None, links: int = 32, probe: int | None = None) -> None:
    """Refuse a kind or a count that cannot work, before any gallery is embedded."""
    if kind not in KINDS:
        raise ConfigError(f"approximate index kind {kind!r}: use one of {', '.join(KINDS)}")
    for name, value, least in (("--lists", lists, 1), ("--links", links, 2), ("--probe", probe, 1)):
        if value is not None and value < least:
            raise ConfigError(f"{name} {value}: use at least {least}")


def default_lists(n: int) -> int:
    """IVF cells: about 4 sqrt(N) (FAISS's guideline), with at least 39 training points per cell (k-means
    warns below that), and at least one."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


@dataclass
class ApproximateIndex:
    """A FAISS index over a gallery's normalised vectors; `probe` is the default search effort (IVF cells
    scanned, or HNSW's beam width `efSearch`): higher is slower and closer to exact."""

    kind: str
    params: dict[str, int]
    blob: np.ndarray  # the serialised FAISS index (uint8)
    _index: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, vectors: torch.Tensor, kind: str = "ivf", *, lists: int | None = None, links: int = 32,
              probe: int | None = None, seed: int = 0) -> "ApproximateIndex":
        """Build over (N, D) L2-normalised float32 vectors (IVF trains its k-means on them, seeded)."""
        check_settings(kind, lists=lists, links=links, probe=probe)
        faiss = require_faiss(f"an approximate ({kind}) index")
        data = np.ascontiguousarray(vectors.detach().float().cpu().numpy())
        n, dim = data.shape
        if kind == "ivf":
            lists = lists or default_lists(n)
            if lists > n:
                raise ConfigError(f"--lists {lists}: an IVF index of {n} vectors needs 1 to {n} cells")
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(data)
            params = {"lists": lists, "probe": probe or max(1, min(lists, 32))}
        else:
            index = faiss.IndexHNSWFlat(dim, links, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = max(40, 2 * links)
            params = {"links": links, "probe": probe or 64}
        index.add(data)
        made = cls(kind, params, faiss.serialize_index(index))
        made._index = index
        return made

    @property
    def nbytes(self) -> int:
        """Size of the serialised structure (what it adds to the index file, and about its memory)."""
        return int(self.blob.nbytes)

    def index(self) -> Any:
        if self._index is None:
            faiss = require_faiss(f"the index's approximate ({self.kind}) search")
            self._index = faiss.deserialize_index(self.blob)
        return self._index

    def search(self, queries: torch.Tensor, k: int, probe: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, row ids) of the k best rows per normalised query; ids of -1 (fewer than k found in the
        cells scanned) are dropped by the caller."""
        index = self.index()
        check_settings(self.kind, probe=probe)
        probe = probe or self.params["probe"]
        if self.kind == "ivf":
            index.nprobe = min(probe, self.params["lists"])
        else:
            index.hnsw.efSearch = max(probe, k)
        scores, ids = index.search(np.ascontiguousarray(queries.detach().float().cpu().numpy()), k)
        return torch.from_numpy(scores), torch.from_numpy(ids)

    # -- in the index file -----------------------------------------------------------------------------------
    def to_file(self) -> tuple[torch.Tensor, str]:
        return torch.from_numpy(self.blob.copy()), json.dumps({"kind": self.kind, **self.params})

    @classmethod
    def from_file(cls, blob: torch.Tensor, meta: str, where: str) -> "ApproximateIndex":
        try:
            params = json.loads(meta)
            kind = params.pop("kind")
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
            raise DataError(f"{where}: the approximate index's settings are damaged; rebuild it with `open4m index "
                            "--approximate KIND`") from None
        if kind not in KINDS or blob.dtype != torch.uint8 or blob.dim() != 1:
            raise DataError(f"{where}: the approximate index is damaged ({kind!r}, {tuple(blob.shape)} "
                            f"{blob.dtype}); rebuild it with `open4m index --approximate KIND`")
        return cls(kind, {k: int(v) for k, v in params.items()}, blob.numpy())
