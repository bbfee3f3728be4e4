"""Decoded modalities as pictures people can read: colours for classes and depth, PCA for features.

A tokenizer's ``to_pil`` gives the lossless natural form (8-bit class ids, stretched depth), which
is right for files a program reads back but nearly black to the eye. Generation outputs are looked
at, so they are rendered the way the 4M demo shows them: class maps in distinct colours, depth
through the turbo colour map (near = warm), feature maps of many channels (CLIP, DINOv2,
ImageBind) as their first three principal components.
"""

from __future__ import annotations

from typing import Any

from ..data.visualize import class_colors, depth_colors, pca_rgb
from ..errors import DataError

__all__ = ["render"]


def render(tokenizer: Any, decoded: Any) -> list:
    """A tokenizer's decoded batch -> one PIL image per sample, coloured for the eye."""
    from PIL import Image

    kind = tokenizer.preprocessor.input
    if kind == "image":
        return tokenizer.to_pil(decoded)
    arr = tokenizer.to_numpy(decoded)
    if kind == "class_map":
        palette = class_colors(max(256, int(arr.max()) + 1))
        return [Image.fromarray(palette[a]) for a in arr]
    if kind == "depth":
        return [Image.fromarray(depth_colors(a)) for a in arr]
    if kind == "features" and arr.ndim == 4:
        if arr.shape[1] == 1:
            return [Image.fromarray(depth_colors(a[0])) for a in arr]
        return [Image.fromarray(pca_rgb(a)) for a in arr]
    raise DataError(f"{kind} outputs of shape {arr.shape} are not images; use the tokenizer's to_numpy()")
