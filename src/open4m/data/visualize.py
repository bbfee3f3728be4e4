"""Contact sheets: every modality of one aligned sample as a tile of one PNG grid.

Looking at all modalities side by side is the fastest check that they align and decode right.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic import save_image
from ..errors import DataError
from .codecs import image_role


def class_colors(n: int) -> np.ndarray:
    """``n`` distinct, stable colours (golden-angle hues); index 0 is black (background / none)."""
    import cv2

    hues = ((np.arange(n) * 0.618034) % 1.0 * 179).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 200, np.uint8), np.full(n, 230, np.uint8)], -1)[None]
    colours = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    colours[0] = 0
    return colours


def depth_colors(depth: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Depth (any scale, larger = farther) as turbo colours (near = warm), stretched between the 2nd and
    98th percentiles of the ``valid`` pixels; invalid pixels black."""
    import cv2

    valid = np.ones(depth.shape, bool) if valid is None else valid
    lo, hi = np.percentile(depth[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    norm = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    img = cv2.applyColorMap((255 - norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return (img * valid[..., None]).astype(np.uint8)


def pca_rgb(features: np.ndarray) -> np.ndarray:
    """A (C, H, W) feature map as (H, W, 3) uint8: its first three principal components, each stretched."""
    c, h, w = features.shape
    flat = features.reshape(c, -1).T.astype(np.float64)
    flat -= flat.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    comps = flat @ vt[:3].T
    if comps.shape[1] < 3:
        comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
    lo, hi = np.percentile(comps, [1, 99], axis=0)
    rgb = np.clip((comps - lo) / np.maximum(hi - lo, 1e-8), 0, 1)
    return (rgb.reshape(h, w, 3) * 255).round().astype(np.uint8)


def text_tile(text: str, width: int, height: int | None = None) -> np.ndarray:
    """Text wrapped to `width` pixels on a light tile: `height` pixels (cut to fit) or, with None, as tall as
    the whole text needs, so a caption is shown in full."""
    from PIL import Image, ImageDraw

    chars = max(8, width // 6)
    lines = [ln for para in text.splitlines() for ln in textwrap.wrap(para, chars) or [""]]
    line_height = 11
    if height is None:
        height = 6 + line_height * len(lines)
    im = Image.new("RGB", (width, height), (250, 250, 250))
    ImageDraw.Draw(im).multiline_text((3, 3), "\n".join(lines[: height // line_height]), fill=(20, 20, 20), spacing=1)
    return np.asarray(im)


def _boxes_on(rgb: np.ndarray, boxes: list[tuple[Any, str]], size: int) -> np.ndarray:
    """Normalised (x0, y0, x1, y1) boxes with their labels drawn on the photo (det classes, OCR text)."""
    import cv2

    img = cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=cv2.INTER_LINEAR)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    for k, (box, label) in enumerate(boxes, start=1):
        x0, y0, x1, y1 = (int(round(float(c) * size)) for c in box)
        colour = tuple(int(c) for c in class_colors(16)[k % 15 + 1])
        cv2.rectangle(img, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, 1)
        cv2.putText(img, label, (x0, max(y0 - 2, 8)), cv2.FONT_HERSHEY_PLAIN, 0.7, colour, 1)
    return img


def box_label(class_name: str, confidence: float | None = None) -> str:
    """What a drawn box says: its class, and a generated box's confidence where it has one (``cube .58``).
    A label's detector `score` is not shown (ground truth carries 1.0)."""
    if confidence is None:
        return class_name
    return f"{class_name} {float(confidence):.2f}".replace(" 0.", " .")


def _keypoints_on(rgb: np.ndarray, persons: list[Mapping[str, Any]], size: int, min_visibility: float = 0.5) -> np.ndarray:
    """Each person's box and visible keypoints (visibility >= `min_visibility`) drawn on the photo."""
    import cv2

    img = _boxes_on(rgb, [(p["box"], "person") for p in persons], size)
    for k, person in enumerate(persons, start=1):
        colour = tuple(int(c) for c in class_colors(16)[k % 15 + 1])
        for x, y, visibility in person["keypoints"]:
            if visibility >= min_visibility:
                cv2.circle(img, (int(round(x * size)), int(round(y * size))), 2, colour, -1)
    return img


def _is_embedding(name: str) -> bool:
    from .. import modalities

    try:
        return modalities.get(name).kind is modalities.Kind.SEQUENCE_EMBEDDING
    except modalities.UnknownModalityError:
        return False


def _embedding_tile(states: np.ndarray, size: int) -> np.ndarray:
    """(L, D) per-token states as a heat map (tokens down, features across), each feature standardised."""
    import cv2

    x = states.astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    grey = (np.clip(x / 3, -1, 1) * 127.5 + 127.5).astype(np.uint8)
    img = cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS)[..., ::-1]
    return cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_NEAREST)


def modality_tile(name: str, value: Any, size: int, rgb: np.ndarray | None = None) -> np.ndarray | None:
    """A size x size RGB picture of one modality's value; None for values with no picture."""
    import cv2

    role = image_role(name)
    if isinstance(value, np.ndarray) and value.ndim >= 2 and role is not None:
        if role == "rgb":
            img = value
        elif role == "depth":
            img = depth_colors(value, value > 0)
        elif role == "normal":
            img = (np.clip((value + 1) * 127.5, 0, 255)).astype(np.uint8)
        elif name.split("@")[0] in ("canny_edge", "sam_edge"):
            img = np.repeat(value[..., None], 3, -1)
        elif role == "unit":  # [0, 1] maps: HED edges, person masks
            img = np.repeat((np.clip(value, 0, 1) * 255).round()[..., None], 3, -1)
        else:
            img = class_colors(256)[value.astype(np.int64) % 256]
        return cv2.resize(np.ascontiguousarray(img, np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    if name == "det" and rgb is not None:
        return _boxes_on(rgb, [(i["boxes"], box_label(i["class_name"], i.get("confidence")))
                              for i in value.get("instances", [])], size)
    if name == "ocr" and rgb is not None:
        return _boxes_on(rgb, [(b["box"], b["text"]) for b in value], size)
    if name == "keypoints" and rgb is not None:
        return _keypoints_on(rgb, value, size)
    if isinstance(value, np.ndarray) and value.ndim == 2 and _is_embedding(name):
        return _embedding_tile(value, size)
    if name == "color_palette":
        colours = value[0][max(value[0], key=int)] if isinstance(value, list) else value
        img = np.zeros((size, size, 3), np.uint8)
        bands = np.array_split(np.arange(size), max(len(colours), 1))
        for band, colour in zip(bands, colours):
            img[band] = colour
        return img
    if isinstance(value, str):
        return text_tile(value, size, size)
    if name == "metadata" and isinstance(value, dict):
        return text_tile("\n".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items()),
                         size, size)
    return None


def contact_sheet(sample: Mapping[str, Any], tile: int = 192, columns: int = 4) -> np.ndarray:
    """All picturable modalities of `sample` as one titled grid (uint8 RGB)."""
    import cv2

    rgb = sample.get("rgb")
    tiles = []
    for name in sorted(k for k in sample if not k.startswith("__")):
        pic = modality_tile(name, sample[name], tile, rgb)
        if pic is None:
            continue
        framed = np.full((tile + 16, tile, 3), 255, np.uint8)
        framed[16:] = pic
        cv2.putText(framed, name, (2, 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1)
        tiles.append(framed)
    if not tiles:
        raise DataError(f"nothing to draw: no modality of {sorted(sample)} has a picture; give a sample with an "
                        "image, token map or text modality")
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    blank = np.full_like(tiles[0], 255)
    return np.concatenate([np.concatenate(r + [blank] * (columns - len(r)), 1) for r in rows], 0)


def save_contact_sheet(sample: Mapping[str, Any], path: str | Path, tile: int = 192) -> Path:
    """Write :func:`contact_sheet` in the image format `path`'s suffix names (`.png`, `.jpg`, ...): PNG bytes under
    another suffix would open wrongly elsewhere, and an unknown suffix is refused before anything is written."""
    from PIL import Image

    return save_image(Image.fromarray(contact_sheet(sample, tile)), path)
