"""Bytes <-> arrays for every modality's on-disk form, shared by the folder and shard formats.

Decoding depends on the file extension and, for PNGs, on what the modality *means*: the same
16-bit PNG is metric depth, an 8-bit one a class map, an RGB one either a photo or packed normals.
Both formats store exactly these bytes, which is what makes conversion between them lossless.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

DEPTH_PNG_SCALE = 1000.0  # 16-bit depth PNGs hold millimetres: 0..65.535 m at 1 mm resolution
#: Every image type open4m reads, wherever it takes images (datasets, photo folders, galleries, generate).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
EXTS = IMAGE_EXTS + (".npy", ".json", ".txt")

# What an image file of a modality holds (keyed by the name without '@resolution').
_IMAGE_ROLE = {
    "rgb": "rgb", "depth": "depth", "normal": "normal",
    "semseg": "classmap", "semseg_coco": "classmap", "instance": "classmap",
    "mask_valid": "classmap",
    # binary edge maps: uint8 {0, 255} (any grey, 1-bit or RGB file reads as one grey channel)
    "canny_edge": "edge", "sam_edge": "edge",
    # soft maps in [0, 1] (a network's edge probability, a segmentation confidence): 8-bit PNG, read back as float
    "hed_edge": "unit", "person_mask": "unit",
    # one instance's binary mask (SAM), uint8 {0, 255}; not pixel-aligned with the image (cropped to its own box)
    "sam_mask": "mask",
}
#: Roles whose files are pixel-aligned with the sample's image (cropped and flipped together).
ALIGNED_ROLES = frozenset({"rgb", "depth", "normal", "classmap", "edge", "unit"})


def image_role(modality: str) -> str | None:
    """'rgb' | 'depth' | 'normal' | 'classmap' | 'edge' | 'unit' | 'mask' for image modalities, None if unknown."""
    return _IMAGE_ROLE.get(modality.split("@", 1)[0])


def is_aligned_image(modality: str) -> bool:
    """Whether a modality's images share the sample's pixel grid (so one crop applies to all of them)."""
    return image_role(modality) in ALIGNED_ROLES


def decode(data: bytes, ext: str, modality: str) -> Any:
    """Decode one file's bytes. Raises ValueError for unreadable data (callers count and skip it)."""
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    try:
        if ext == ".json":
            return json.loads(data.decode("utf-8"))
        if ext == ".txt":
            return data.decode("utf-8").strip()
        if ext == ".npy":
            return np.load(io.BytesIO(data), allow_pickle=False)
        if ext in IMAGE_EXTS:
            return _decode_image(data, modality)
    except (OSError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as err:
        from PIL import UnidentifiedImageError

        why = "not an image file PIL can read" if isinstance(err, UnidentifiedImageError) else str(err) or "empty"
        raise DataError(f"cannot decode {modality} {ext} data: {why}") from err
    raise DataError(f"unsupported file type {ext!r} for modality {modality!r}; supported: {', '.join(EXTS)}")


def open_image(path: str | os.PathLike, label: str) -> Any:
    """`PIL.Image.open(path)`, loaded, with an unreadable file as a one-line `DataError` (``label`` names the input:
    the option or modality the path was given as)."""
    from PIL import Image, UnidentifiedImageError

    label = f"{label} " if label and not label.endswith("=") else label  # `--input rgb=PATH` reads as typed
    if Path(path).is_dir():
        raise DataError(f"{label}{path} is a folder; give an image file (png, jpg, webp, ...)")
    try:
        image = Image.open(path)
        image.load()  # the pixels now: a truncated file fails here, not halfway through generation
    except UnidentifiedImageError as err:
        raise DataError(f"{label}{path}: not an image file PIL can read (png, jpg, webp, ...)") from err
    except Image.DecompressionBombError as err:  # a hostile (or absurdly large) file: Pillow refuses to decode it
        raise DataError(f"{label}{path}: too large to decode safely ({err}); give a smaller image") from err
    except (FileNotFoundError, PermissionError) as err:
        raise DataError(f"{label}{path}: cannot read it ({err.strerror}); check the path and its permissions") from err
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's errors for damaged image data
        raise DataError(f"{label}{path}: the image file is damaged ({err}); save or download it again") from err
    return image


#: Pillow modes of one-channel images with more than 8 bits (16-bit PNGs, 32-bit integer and float files).
WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def rgb_image(im: Any) -> Any:
    """Any PIL image as an 8-bit RGB PIL image, the way a person sees the photo.

    Grey, palette and RGBA files convert as Pillow does (alpha dropped). A 16-bit or 32-bit grey
    file (integer or float) is scaled to 8 bits by its real range, the lowest and highest value it holds, because
    Pillow's own conversion clips every value above 255 (a 16-bit photo would read as white, a float one in 0..1
    black) and the high byte alone leaves a 12-bit camera file nearly black. Non-finite float pixels read as the
    lowest value.
    """
    from PIL import Image

    if im.mode not in WIDE_GREY_MODES:
        return im.convert("RGB")
    values = np.asarray(im, np.float64)
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    values = np.where(finite, values, lo)
    if hi > lo:
        grey = (values - lo) * (255.0 / (hi - lo))
    else:  # one flat value: its level within the 16-bit range
        grey = np.full_like(values, min(hi, 65535.0) * 255.0 / 65535.0)
    return Image.fromarray(np.round(grey).clip(0, 255).astype(np.uint8)).convert("RGB")


def _decode_image(data: bytes, modality: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        role = image_role(modality)
        if role == "rgb":
            return np.array(rgb_image(im))
        if role == "normal":
            return np.asarray(im.convert("RGB"), np.float32) / 127.5 - 1.0
        if role == "depth":
            arr = np.asarray(im)
            if arr.dtype != np.uint16 and im.mode not in ("I;16", "I"):
                raise DataError(f"depth PNGs must be 16-bit (millimetres), got mode {im.mode}")
            return arr.astype(np.float32) / DEPTH_PNG_SCALE
        if role == "classmap":
            return np.array(im if im.mode in ("L", "P") else im.convert("L"))
        if role in ("edge", "mask"):
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: its high byte, not Pillow's clip at 255
                return (np.asarray(im, np.uint32) >> 8).clip(0, 255).astype(np.uint8)
            return np.array(im.convert("L"))  # 1-bit files read as {0, 255}, RGB ones as their grey level
        if role == "unit":
            return np.asarray(im.convert("L"), np.float32) / 255.0
        return np.array(im)


def encode(value: Any, ext: str, modality: str) -> bytes:
    """Encode a value the way :func:`decode` reads it back."""
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if ext == ".json":
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
    if ext == ".txt":
        return str(value).encode("utf-8")
    if ext == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.asarray(value), allow_pickle=False)
        return buf.getvalue()
    if ext in IMAGE_EXTS:
        return _encode_image(np.asarray(value), ext, modality)
    raise DataError(f"unsupported file type {ext!r} for modality {modality!r}; supported: {', '.join(EXTS)}")


def _one_channel(arr: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1) -> (H, W): the channel axis dropped, never the image's own (a 1x1 map stays 2-d)."""
    return arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr


def _encode_image(arr: np.ndarray, ext: str, modality: str) -> bytes:
    from PIL import Image

    role = image_role(modality)
    if role == "depth":
        if ext != ".png":
            raise ConfigError(f"depth must be stored as 16-bit .png or .npy, not {ext}")
        mm = np.clip(np.round(arr * DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16)
        im = Image.fromarray(mm)
    elif role == "normal":
        im = Image.fromarray(np.clip(np.round((arr + 1.0) * 127.5), 0, 255).astype(np.uint8))
    elif role in ("edge", "mask"):
        grey = _one_channel(arr)
        if grey.dtype == bool:
            grey = grey.astype(np.uint8) * 255
        elif grey.dtype != np.uint8:
            if grey.size and (float(grey.min()) < 0 or float(grey.max()) > 1):
                raise DataError(f"{modality}: a float map must hold values in [0, 1], got {grey.min()}..{grey.max()}")
            grey = np.round(grey * 255.0).astype(np.uint8)
        im = Image.fromarray(grey)
    elif role == "unit":
        if arr.dtype == np.uint8:
            raise DataError(f"{modality}: a [0, 1] map is written from a float array, got uint8")
        im = Image.fromarray(np.clip(np.round(_one_channel(arr) * 255.0), 0, 255).astype(np.uint8))
    else:
        if arr.dtype != np.uint8:
            raise DataError(f"{modality}: images are written from uint8 arrays, got {arr.dtype}")
        im = Image.fromarray(arr)
    buf = io.BytesIO()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF", ".gif": "GIF"}[ext]
    im.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()
