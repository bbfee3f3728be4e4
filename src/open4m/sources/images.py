"""`images:DIR`: every file of one modality under a folder, preprocessed for a tokenizer (tokenizer training)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.codecs import IMAGE_EXTS, image_role, open_image, rgb_image
from ..data.transforms import instance_box_crop
from ..errors import DataError, NotFound

__all__ = ["ImageFiles", "IMAGE_FILE_EXTS", "build"]

logger = logging.getLogger(__name__)

IMAGE_FILE_EXTS = frozenset(IMAGE_EXTS)


class ImageFiles(torch.utils.data.Dataset):
    """Every file of one modality under a folder (any layout, searched recursively), in its natural form.

    Images (.png/.jpg ...) are read with Pillow — 16-bit PNGs as depth in units of the file, 1-bit /
    8-bit / RGB files as one grey channel for one-channel image tokenizers (edges, SAM masks; a SAM
    tokenizer's masks are cut to the box of their pixels first) — and
    ``.npy`` files hold arrays (depth maps, class maps, feature maps, vectors). Each sample goes
    through the tokenizer's own preprocessing (`model.preprocessor`), resized or centre-cropped to
    its image size: items are what the tokenizer's `encode` takes, one sample at a time.
    """

    def __init__(self, root: str | Path, model: Any, image_size: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFound(f"data folder {self.root} does not exist")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_FILE_EXTS | {".npy"})
        if not self.files:
            raise DataError(f"no image or .npy files under {self.root}; point the data path (--data) at the folder "
                            "holding the training files (images, 16-bit depth PNGs, .npy arrays)")
        self.corrupt: dict[Path, str] = {}  # unreadable files skipped so far (this process), with the reason
        self.pre = copy.copy(model.preprocessor)
        # a SAM instance mask is encoded in the frame of its own box (the official rasterisation)
        self.instance_mask = image_role(getattr(model.config, "modality", None) or "") == "mask"
        size = image_size or model.config.image_size
        if self.pre.input in ("image", "class_map", "depth"):
            self.pre.size = size
        elif self.pre.input == "features":  # one feature vector per token: the map is the token grid
            self.pre.size = size // model.config.patch_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        """Sample `i`; an unreadable file is skipped (logged, kept in `corrupt`) for the next good one, as
        the dataset formats do, so one damaged photo never ends a training run. Only damaged files are
        skipped: a file the tokenizer cannot take (wrong channels) stays an error."""
        for step in range(len(self.files)):
            path = self.files[(i + step) % len(self.files)]
            try:
                data = self._read(path)
            except DataError as err:
                if path not in self.corrupt:
                    self.corrupt[path] = str(err)
                    logger.warning("skipping %s; %d unreadable file(s) skipped so far", err, len(self.corrupt))
                continue
            arr = data if isinstance(data, np.ndarray) else self._as_array(data)
            return self.pre.to_model(instance_box_crop(arr) if self.instance_mask else arr)[0]
        raise DataError(f"no file under {self.root} can be read (e.g. {next(iter(self.corrupt.values()))}); replace "
                        "the damaged files or point --data at the folder of training files")

    def _read(self, path: Path) -> Any:
        """One file: an .npy array or a loaded PIL image; a damaged one is a `DataError` naming it."""
        if path.suffix.lower() == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                raise DataError(f"{path}: not a readable NumPy array file ({err or 'empty'})") from err
        return open_image(path, "")

    def _as_array(self, im: Any) -> np.ndarray:
        with im:
            arr = self._image_array(im)
        return arr.astype(np.float32) if self.pre.input == "depth" else arr

    def _image_array(self, im: Any) -> np.ndarray:
        """A file as the tokenizer's channels: RGB for 3-channel images; grey for 1-channel ones (edges, SAM
        masks: 1-bit, 8-bit, 16-bit or RGB files alike); other inputs as stored."""
        if self.pre.input != "image":
            return np.array(im)
        if len(self.pre.mean) == 3:
            return np.array(rgb_image(im))  # grey, palette, RGBA and 16-bit photos alike
        if len(self.pre.mean) != 1:
            raise DataError(f"{self.root}: a {len(self.pre.mean)}-channel tokenizer reads .npy arrays, not image files")
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to [0, 1] rather than clip at 255
            return np.asarray(im, np.float32) / 65535.0
        return np.array(im.convert("L"))


def build(arg: str | None, *, model: Any, image_size: int | None = None) -> ImageFiles:
    """`images:DIR` or a plain folder, for `model` (a tokenizer: its preprocessing and image size)."""
    if not arg:
        raise NotFound("the images source needs a folder: images:DIR")
    return ImageFiles(arg, model, image_size)
