"""Decoded aligned samples (`open4m.data.formats`): a folder dataset or a shard root, any modalities.

The family ``aligned`` holds what labelers, `open4m show` and on-the-fly tokenization
(`open4m.data.loader.TokenizingDataset`) read: samples of decoded arrays, texts and JSON, keyed by
modality (plus ``__key__``). Its sources: a folder (`folder:DIR` or a plain folder), a shard root
(`shards:DIR` or a folder with `index.json`), a text corpus (`text:PATH`), the procedural world
(`world[:SIZE]`) and mixtures of these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data.formats import FolderDataset, ShardDataset, is_shard_root, read_index
from ..errors import NotFound

__all__ = ["build_folder", "build_shards"]


def build_folder(arg: str | None, *, modality_names: Sequence[str] | None = None,
                 required: Sequence[str] = ()) -> FolderDataset:
    """`folder:DIR` or a plain folder: `root/<modality>/<key>.<ext>`."""
    if not arg or not Path(arg).is_dir():
        raise NotFound(f"data folder {arg!r} does not exist")
    return FolderDataset(arg, modalities=list(modality_names) if modality_names else None, required=required)


def build_shards(arg: str | None, *, modality_names: Sequence[str] | None = None,
                 required: Sequence[str] = ()) -> ShardDataset:
    """`shards:DIR` or a folder with `index.json`."""
    if not arg or not is_shard_root(arg):
        raise NotFound(f"{arg!r} is not a shard root (no index.json); write one with `open4m convert`")
    if not modality_names:
        modality_names = read_index(arg)["modalities"]
    return ShardDataset(arg, list(modality_names), required=required)
