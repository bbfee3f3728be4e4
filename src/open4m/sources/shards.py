"""A shard root of pre-tokenized samples: `root/index.json` + per-modality webdataset tars."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from ..data.formats import ShardDataset, is_shard_root
from ..errors import NotFound

__all__ = ["TokenShards", "build", "is_shard_root"]


class TokenShards(torch.utils.data.IterableDataset):
    """A shard stream with its keys renamed from folder names to modality names.

    The folder of a modality is `folders[name]`, else its name. Each rank reads its own shards
    (`ShardDataset` splits by node and worker), hence `splits_by_rank`.
    """

    splits_by_rank = True

    def __init__(self, root: str | Path, modality_names: Sequence[str], folders: Mapping[str, str] | None = None,
                 **shard_options: Any) -> None:
        super().__init__()
        folders = dict(folders or {})
        self.rename = {folders.get(n, n): n for n in modality_names}
        self.inner = ShardDataset(str(root), list(self.rename), **shard_options)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for s in self.inner:
            yield {self.rename[k]: v for k, v in s.items() if k in self.rename}


def build(arg: str | None, *, modality_names: Sequence[str], folders: Mapping[str, str] | None = None) -> TokenShards:
    """`shards:DIR` or a folder holding `index.json`."""
    if not arg or not is_shard_root(arg):
        raise NotFound(f"{arg!r} is not a shard root (no index.json); write one with `open4m convert`")
    return TokenShards(arg, modality_names, folders)
