"""A folder of pre-tokenized samples (what `open4m tokenize` writes): `root/<modality>/<key>.npy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import modalities
from ..data.formats import FolderDataset
from ..errors import DataError, NotFound
from ..modalities import Kind

__all__ = ["TokenFolder", "build"]


class TokenFolder(torch.utils.data.Dataset):
    """Pre-tokenized samples in the folder layout (`root/<folder>/<key>.npy`), keyed by modality.

    The folder of a modality is `folders[name]`, else the registry name if such a folder exists,
    else the registry `path` (`tok_rgb@224` -> `tok_rgb`). Only samples with every modality are used.
    """

    def __init__(self, root: str | Path, modality_names: Sequence[str], folders: Mapping[str, str] | None = None) -> None:
        root = Path(root)
        folders = dict(folders or {})
        for name in modality_names:
            if name not in folders:
                path = modalities.get(name).path
                folders[name] = name if (root / name).is_dir() or not path else path
        self.folders = {n: folders[n] for n in modality_names}
        folder_list = list(dict.fromkeys(self.folders.values()))
        self.inner = FolderDataset(root, modalities=folder_list, required=folder_list)
        if len(self.inner) == 0:
            raise DataError(f"{root}: no sample has all of {folder_list}; check the folder names (data.folders maps "
                            "other names)")

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.inner[index]
        return {name: self._first_crop(name, raw[folder]) for name, folder in self.folders.items()}

    @staticmethod
    def _first_crop(name: str, value: Any) -> Any:
        """`open4m tokenize` stores one row per crop; row 0 is the centre crop."""
        mod = modalities.get(name)
        if mod.kind is Kind.IMAGE_TOKENS and isinstance(value, np.ndarray):
            n = mod.num_tokens()
            if value.size > n and value.size % n == 0:
                return value.reshape(-1, n)[0]
        return value


def build(arg: str | None, *, modality_names: Sequence[str], folders: Mapping[str, str] | None = None) -> TokenFolder:
    """`tokens:DIR` or a plain folder."""
    if not arg or not Path(arg).is_dir():
        raise NotFound(f"token folder {arg!r} does not exist; point data.source at what `open4m tokenize` wrote")
    return TokenFolder(arg, modality_names, folders)
