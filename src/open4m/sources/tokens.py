"""A folder of pre-tokenized samples (what `open4m tokenize` writes): `root/<folder>/<key>.npy`.

Folders are found without a map (:mod:`open4m.sources.discover`: registry name, registry path,
``tok_<name>``). Files may hold several crops, as the official datasets store them and as
`open4m tokenize --n-crops N` writes them: image tokens ``(n_crops, N)`` (or ``(n_crops, h, w)``),
sequences ``(n_crops, L)`` padded with [PAD] = 0, sequence embeddings ``(n_crops, L, E)``, and
``crop_settings/<key>.npy`` ``(n_crops, 5)``. Each training epoch picks one crop per sample from
(seed, epoch, index), the same row for every modality (a one-row file serves every crop, e.g. a
caption); validation uses row 0, the centre crop. Raw RGB pixels stored as images (``rgb@224`` from
``rgb/*.jpg``) are cut with that crop's settings (the centre square without them) and normalised with
the modality's ``pixel_mean`` / ``pixel_std`` (ImageNet's when it has none, the 4M input; a world
model's ``rgb@64`` is [-1, 1]); pixels stored as float ``.npy`` are taken as model-ready.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import modalities
from ..data.formats import FolderDataset
from ..errors import DataError, NotFound
from ..modalities import Kind
from .discover import discover

__all__ = ["TokenFolder", "CROP_SETTINGS", "crop_index", "select_crop", "build"]

CROP_SETTINGS = "crop_settings"


def _rows(name: str, value: Any) -> int:
    """How many crops a modality's stored value holds (1 for a value that serves every crop)."""
    mod = modalities.get(name)
    if not isinstance(value, np.ndarray):
        return 1
    if mod.kind is Kind.IMAGE_TOKENS:
        n = mod.num_tokens()
        return value.size // n if value.size > n and value.size % n == 0 else 1
    if mod.kind is Kind.SEQUENCE:
        return len(value) if value.ndim == 2 else 1
    if mod.kind is Kind.SEQUENCE_EMBEDDING:
        return len(value) if value.ndim == 3 else 1
    return 1


def crop_index(seed: int, epoch: int, index: int, n_crops: int, train: bool = True) -> int:
    """The crop a sample shows in an epoch: uniform over its stored crops from (seed, epoch, index); 0 to validate."""
    if n_crops <= 1 or not train:
        return 0
    return int(np.random.default_rng([seed, epoch, index]).integers(n_crops))


def key_index(key: str) -> int:
    """A stable integer for a sample key (streams have no index that survives re-sharding)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def select_crop(sample: Mapping[str, Any], names: Sequence[str], seed: int, epoch: int, index: int, *,
                train: bool = True, image_size: int = 224) -> dict[str, Any]:
    """Model-form values of ``names`` for one crop of a stored sample (``sample`` keyed by modality name,
    plus ``crop_settings`` when stored); the crop is drawn by :func:`crop_index`."""
    counts = {n: _rows(n, sample[n]) for n in names}
    crops = sample.get(CROP_SETTINGS)
    n = max(counts.values(), default=1)
    odd = {m: c for m, c in counts.items() if c not in (1, n)}
    if odd or (crops is not None and n > 1 and len(crops) < n):
        have = {**counts, **({CROP_SETTINGS: len(crops)} if crops is not None else {})}
        raise DataError(f"sample {sample.get('__key__', index)!r} stores different numbers of crops per modality {have}; "
                        "tokenize every modality with the same --n-crops (crop_settings is shared)")
    k = crop_index(seed, epoch, index, n, train)
    return {m: _one_crop(m, sample[m], k if counts[m] > 1 else 0, crops, image_size) for m in names}


def _one_crop(name: str, value: Any, k: int, crops: np.ndarray | None, image_size: int) -> Any:
    mod = modalities.get(name)
    if not isinstance(value, np.ndarray):
        return value
    if mod.kind is Kind.IMAGE_TOKENS:
        n = mod.num_tokens()
        return value.reshape(-1, n)[k] if value.size % n == 0 else value
    if mod.kind is Kind.SEQUENCE:
        row = value[k] if value.ndim == 2 else value
        nonpad = np.flatnonzero(row != modalities.PAD_ID)
        return row[:nonpad[-1] + 1 if len(nonpad) else 0].astype(np.int64)  # rows are padded after the text
    if mod.kind is Kind.SEQUENCE_EMBEDDING:
        emb = value[k] if value.ndim == 3 else value
        used = np.flatnonzero(np.abs(emb).sum(-1) > 0)
        return torch.from_numpy(np.ascontiguousarray(emb[:used[-1] + 1 if len(used) else 0], np.float32))
    if mod.kind is Kind.PIXELS and value.dtype == np.uint8:  # an image file; float arrays are model-ready already
        return _pixels(value, crops[k] if crops is not None and k < len(crops) else None, mod.image_size or image_size,
                       mod.pixel_mean, mod.pixel_std)
    return value


def _pixels(image: np.ndarray, row: np.ndarray | None, size: int, mean: Sequence[float] | None = None,
            std: Sequence[float] | None = None) -> torch.Tensor:
    """The crop of an RGB image as the model's pixel input, normalised with the modality's own mean / std
    (ImageNet's, the 4M input, when it declares none; the world models use [-1, 1])."""
    from ..data.transforms import Crop, augment, center_crop, to_tensors

    if image.ndim != 3:
        raise DataError(f"the pixel input must be an RGB image (H, W, 3), got shape {image.shape}")
    crop = Crop.from_row(row) if row is not None else center_crop(*image.shape[:2])
    return to_tensors(augment({"rgb": image}, crop, size), "fourm", pixel_mean=mean, pixel_std=std)["rgb"]


class TokenFolder(torch.utils.data.Dataset):
    """Pre-tokenized samples in the folder layout, keyed by modality; one crop per sample and epoch.

    ``modality_names`` None takes every folder that holds a registered modality (the rest are
    reported); ``folders`` maps names to other folders. Only samples with every modality are used.
    """

    def __init__(self, root: str | Path, modality_names: Sequence[str] | None = None,
                 folders: Mapping[str, str] | None = None, *, seed: int = 0, split: str = "train",
                 image_size: int | None = None) -> None:
        root = Path(root)
        present = [p.name for p in root.iterdir() if p.is_dir()]
        found = discover(str(root), present, modality_names, folders=folders, image_size=image_size)
        self.folders, self.unknown = found.folders, found.unknown
        self.names = list(self.folders)
        folder_list = list(dict.fromkeys(self.folders.values()))
        extra = [CROP_SETTINGS] if CROP_SETTINGS in present and CROP_SETTINGS not in folder_list else []
        self.inner = FolderDataset(root, modalities=folder_list + extra, required=folder_list)
        if len(self.inner) == 0:
            raise DataError(f"{root}: no sample has all of {folder_list}; check the folder names (data.folders maps "
                            "other names)")
        self.seed, self.epoch, self.train, self.image_size = seed, 0, split == "train", image_size or 224

    def set_epoch(self, epoch: int) -> None:
        """Later items show the crops of `epoch` (the batch loader sets it before each sample)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.inner[index]
        sample = {name: raw[folder] for name, folder in self.folders.items()}
        if CROP_SETTINGS in raw:
            sample[CROP_SETTINGS] = raw[CROP_SETTINGS]
        return select_crop(sample, self.names, self.seed, self.epoch, index, train=self.train,
                           image_size=self.image_size)


def build(arg: str | None, *, modality_names: Sequence[str] | None = None, folders: Mapping[str, str] | None = None,
          seed: int = 0, split: str = "train", image_size: int | None = None) -> TokenFolder:
    """`tokens:DIR` or a plain folder."""
    if not arg or not Path(arg).is_dir():
        raise NotFound(f"token folder {arg!r} does not exist; point data.source at what `open4m tokenize` wrote")
    return TokenFolder(arg, modality_names, folders, seed=seed, split=split, image_size=image_size)
