"""Retrieval with predicted global embeddings (the 4M-21 retrieval demos).

A FourM model predicts the tokens of a global embedding (`tok_dinov2_global`, 16 tokens) from
any subset of input modalities; the global tokenizer decodes them to a vector. A gallery is
embedded once into a `GalleryIndex` (saved as safetensors) and ranked by cosine similarity —
an exact search with one matrix product (the default), or, for large galleries, an approximate
FAISS index (IVF or HNSW, `open4m.generation.ann`) built once and stored in the same file. The
official notebook said "cosine" but ranked by L2; this is cosine.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError, DataError
from ..weights import read_safetensors
from .ann import ApproximateIndex, require_faiss
from .pipeline import Pipeline
from ..atomic import atomic_write


def predict_embeddings(pipe: Pipeline, inputs: Mapping[str, Any] | Any, *, seed: int = 0) -> torch.Tensor:
    """(1, D) global embedding predicted by `pipe` (a pipeline whose last target is a global-token modality)."""
    target = pipe.schedule.targets[-1]
    out = pipe(inputs, seed=seed)
    if target not in out.vectors:
        raise ConfigError(f"the pipeline's last target {target!r} did not decode to vectors; retrieval needs a "
                         "global-embedding target such as tok_dinov2_global with its tokenizer")
    return out.vectors[target]


_EMPTY = ("a gallery index of no images: there is nothing to rank; build it with `open4m index --images DIR` on a "
          "folder that holds images")


@dataclass
class GalleryIndex:
    """L2-normalised gallery vectors (N, D) and a key (file name, id) per row; `approximate`, when built,
    answers searches through FAISS instead of the exact matrix product; `settings` records how the vectors
    were predicted (model, target, sampling, seed), so a query predicted otherwise can be told apart."""

    vectors: torch.Tensor
    keys: list[str]
    approximate: ApproximateIndex | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.keys):
            raise DataError(f"an index needs vectors (N, D) and N keys; got {tuple(self.vectors.shape)} and "
                             f"{len(self.keys)} keys")
        if not self.keys:
            raise DataError(_EMPTY)
        self.vectors = F.normalize(self.vectors.float(), dim=-1)

    @classmethod
    def build(cls, vectors: Sequence[torch.Tensor] | torch.Tensor, keys: Sequence[str],
              settings: Mapping[str, Any] | None = None) -> "GalleryIndex":
        if not isinstance(vectors, torch.Tensor) and not len(vectors):
            raise DataError(_EMPTY)
        stacked = vectors if isinstance(vectors, torch.Tensor) else torch.cat([v.reshape(-1, v.shape[-1]) for v in vectors])
        return cls(stacked, list(keys), settings=dict(settings or {}))

    def differences(self, settings: Mapping[str, Any]) -> list[str]:
        """How ``settings`` (a query's) differ from those the gallery was embedded with, one phrase each
        (empty when they agree, or when the index recorded none: files written before it did)."""
        return [f"{key} {self.settings[key]!r} (the query: {settings[key]!r})" for key in self.settings
                if key in settings and settings[key] != self.settings[key]]

    def with_approximate(self, kind: str = "ivf", **options: Any) -> "GalleryIndex":
        """This gallery with an approximate FAISS index of `kind` (`ivf`, `hnsw`; options: `lists`, `links`,
        `probe`, see `ApproximateIndex.build`) built over its vectors."""
        made = copy.copy(self)  # not the constructor: the vectors are normalised already, and stay bit-identical
        made.approximate = ApproximateIndex.build(self.vectors, kind, **options)
        return made

    def search(self, queries: torch.Tensor, k: int = 5, *, use_faiss: bool = False, exact: bool = False,
               probe: int | None = None) -> list[list[tuple[str, float]]]:
        """The `k` most cosine-similar gallery entries for each query row, best first: through the approximate
        index when there is one (`probe`: its search effort), exactly with `exact=True` or without one
        (`use_faiss`: the exact search done by FAISS)."""
        if queries.dim() == 1:
            queries = queries[None]
        if queries.shape[-1] != self.vectors.shape[1]:
            raise DataError(f"queries are {queries.shape[-1]}-d but the index holds {self.vectors.shape[1]}-d vectors; "
                             "embed them with the same model and tokenizer")
        k = min(k, len(self.keys))
        q = F.normalize(queries.float(), dim=-1)
        if self.approximate is not None and not exact:
            scores, idx = self.approximate.search(q, k, probe)
        elif use_faiss:
            scores, idx = _faiss_search(self.vectors, q, k)
        else:
            scores, idx = (q @ self.vectors.T).topk(k, dim=-1)
        return [[(self.keys[i], float(s)) for s, i in zip(srow.tolist(), irow.tolist()) if i >= 0]
                for srow, irow in zip(scores, idx)]

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        tensors, metadata = {"vectors": self.vectors.contiguous()}, {"keys": json.dumps(self.keys)}
        if self.settings:
            metadata["settings"] = json.dumps(self.settings)
        if self.approximate is not None:
            tensors["faiss"], metadata["faiss"] = self.approximate.to_file()
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GalleryIndex":
        """An index `save` wrote; a missing, damaged or foreign file is a one-line error saying to rebuild it."""
        path = Path(path)
        rebuild = "rebuild it with `open4m index --images DIR --out INDEX`"
        if path.is_dir():
            raise DataError(f"{path} is a folder, not a gallery index file; {rebuild}")
        try:
            tensors, meta = read_safetensors(path)
        except CheckpointError:
            raise DataError(f"{path} is not a readable gallery index (damaged, truncated or another kind of file); "
                            f"{rebuild}") from None
        if "keys" not in meta or "vectors" not in tensors:
            raise DataError(f"{path} is not a gallery index (it holds {sorted(tensors)[:3]}); {rebuild}")
        try:
            keys = json.loads(meta["keys"])
        except json.JSONDecodeError:
            keys = None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise DataError(f"{path}: the index's file names are damaged (not a JSON list of names); {rebuild}")
        if not keys:
            raise DataError(f"{path} is an empty gallery index (no images); rebuild it with `open4m index "
                            "--images DIR` on a folder that holds images")
        vectors = tensors["vectors"]
        if vectors.dim() != 2 or vectors.shape[0] != len(keys) or not vectors.is_floating_point():
            raise DataError(f"{path} holds {tuple(vectors.shape)} {str(vectors.dtype).replace('torch.', '')} vectors for "
                            f"{len(keys)} images; the index is damaged, {rebuild}")
        if not torch.isfinite(vectors).all():
            raise DataError(f"{path} holds vectors that are not finite numbers; the index is damaged, {rebuild}")
        approximate = ApproximateIndex.from_file(tensors["faiss"], meta.get("faiss", ""), str(path)) \
            if "faiss" in tensors else None
        try:
            settings = json.loads(meta.get("settings", "{}"))
        except json.JSONDecodeError:
            settings = None
        settings = settings if isinstance(settings, dict) else {}  # only a hint for retrieve: unreadable is none
        return cls(vectors, keys, approximate, settings)


def _faiss_search(gallery: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    faiss = require_faiss("--faiss")
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery.numpy())
    scores, idx = index.search(queries.numpy(), k)
    return torch.from_numpy(scores), torch.from_numpy(idx)


__all__ = ["GalleryIndex", "predict_embeddings"]
