"""A shard root of pre-tokenized samples: `root/index.json` + per-modality webdataset tars.

Folders are matched to modalities without a map (:mod:`open4m.sources.discover`, over the folders
``index.json`` lists), and multi-crop token files work as in the token folder: each epoch shows one
crop per sample, drawn from (seed, epoch, sample key) and shared by every modality of the sample.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from ..data.formats import ShardDataset, is_shard_root, read_index
from ..errors import NotFound
from .discover import discover
from .tokens import CROP_SETTINGS, key_index, select_crop

__all__ = ["TokenShards", "build", "is_shard_root"]


class TokenShards(torch.utils.data.IterableDataset):
    """A shard stream with its folders renamed to modality names and one stored crop picked per sample.

    The folder of a modality is `folders[name]`, else the one :func:`~open4m.sources.discover.folder_for`
    finds among the folders of ``index.json``. Each rank reads its own shards: the training loader reads
    one `split` part per piece of the global batch (the same parts whatever the number of ranks);
    iterated plainly, `ShardDataset` splits by node and worker, hence `splits_by_rank`.
    """

    splits_by_rank = True

    def __init__(self, root: str | Path, modality_names: Sequence[str] | None = None,
                 folders: Mapping[str, str] | None = None, *, seed: int = 0, split: str = "train",
                 image_size: int | None = None, **shard_options: Any) -> None:
        super().__init__()
        present = list(read_index(root)["modalities"]) \
            if is_shard_root(root) else list(folders.values() if folders else modality_names or [])
        found = discover(str(root), present, modality_names, folders=folders, image_size=image_size)
        self.names, self.unknown = list(found.folders), found.unknown
        self.rename = {f: n for n, f in found.folders.items()}
        wanted = list(self.rename) + ([CROP_SETTINGS] if CROP_SETTINGS in present else [])
        self.inner = ShardDataset(str(root), wanted, required=list(self.rename), seed=seed, **shard_options)
        self.seed, self.train, self.image_size = seed, split == "train", image_size or 224

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def split(self, part: int, parts: int) -> "TokenShards":
        """A copy reading only its part of each epoch's shards (`ShardDataset.split`)."""
        other = copy.copy(self)
        other.inner = self.inner.split(part, parts)
        return other

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for s in self.inner:
            sample = {self.rename.get(k, k): v for k, v in s.items()}
            yield select_crop(sample, self.names, self.seed, self.inner.epoch, key_index(s["__key__"]),
                              train=self.train, image_size=self.image_size)


def build(arg: str | None, *, modality_names: Sequence[str] | None = None, folders: Mapping[str, str] | None = None,
          seed: int = 0, split: str = "train", image_size: int | None = None) -> TokenShards:
    """`shards:DIR` or a folder holding `index.json`."""
    if not arg or not is_shard_root(arg):
        raise NotFound(f"{arg!r} is not a shard root (no index.json); write one with `open4m convert`")
    return TokenShards(arg, modality_names, folders, seed=seed, split=split, image_size=image_size)
