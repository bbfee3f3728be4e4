"""Bytes <-> arrays for every modality's on-disk form, shared by the folder and shard formats.

Decoding depends on the file extension and, for PNGs, on what the modality *means*: the same
16-bit PNG is metric depth, an 8-bit one a class map, an RGB one either a photo or packed normals.
Both formats store exactly these bytes, which is what makes conversion between them lossless.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

DEPTH_PNG_SCALE = 1000.0  # 16-bit depth PNGs hold millimetres: 0..65.535 m at 1 mm resolution
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
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
        raise DataError(f"cannot decode {modality} {ext} data: {err}") from err
    raise DataError(f"unsupported file type {ext!r} for modality {modality!r}; supported: {', '.join(EXTS)}")


def _decode_image(data: bytes, modality: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        role = image_role(modality)
        if role == "rgb":
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: Pillow's convert would clip at 255
                grey = (np.asarray(im, np.uint32) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=-1)
            return np.array(im.convert("RGB"))  # grey, palette, RGBA (alpha dropped), 16-bit RGB (high byte)
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
        grey = np.squeeze(arr)
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
        im = Image.fromarray(np.clip(np.round(np.squeeze(arr) * 255.0), 0, 255).astype(np.uint8))
    else:
        if arr.dtype != np.uint8:
            raise DataError(f"{modality}: images are written from uint8 arrays, got {arr.dtype}")
        im = Image.fromarray(arr)
    buf = io.BytesIO()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[ext]
    im.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()
