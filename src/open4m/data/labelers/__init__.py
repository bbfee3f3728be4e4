"""Pseudo-labelers: each turns some modalities of an aligned sample into a new one.

Import-light: the classes are cheap, OpenCV / transformers load inside `__call__`.
"""

from .base import Labeler
from .run import label_folder
from .edges import CannyEdges, InstanceEdges
from .metadata import ImageMetadata
from .palette import ColorPalette

LABELERS: dict[str, type[Labeler]] = {
    "canny_edge": CannyEdges, "sam_edge": InstanceEdges, "color_palette": ColorPalette, "metadata": ImageMetadata,
}

__all__ = ["LABELERS", "label_folder", "CannyEdges", "ColorPalette", "ImageMetadata", "InstanceEdges", "Labeler"]
