"""Pseudo-labelers: each turns some modalities of an aligned sample into a new one.

`LABELERS` is the registration point: modality name -> Labeler class. Entries are written as
``".module:Class"`` and imported on first lookup, so ``import open4m.data.labelers`` and listing the
names load neither numpy nor torch (``open4m label --help`` lists them instantly); the network
labelers import their optional packages (h5py, transformers, mediapipe, onnxruntime) only when they
run. `MODEL_KINDS` are the adapters that run a local transformers model folder (``--model``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Labeler, LabelerRegistry, require

LABELERS: LabelerRegistry = LabelerRegistry({
    "canny_edge": ".edges:CannyEdges",
    "sam_edge": ".edges:InstanceEdges",
    "color_palette": ".palette:ColorPalette",
    "metadata": ".metadata:ImageMetadata",
    "hed_edge": ".hed:HedEdges",
    "caption_emb": ".text_embed:CaptionEmbedding",
    "keypoints": ".pose:PoseKeypoints",
    "person_mask": ".pose:PersonMask",
    "ocr": ".ocr:OcrBoxes",
}, package=__name__)

#: Labelers built from a local transformers model folder (`network.from_pretrained`, ``open4m label --model``).
MODEL_KINDS: tuple[str, ...] = ("depth", "normal", "semseg", "feature_map", "embedding", "caption")

# Public names, each imported from its module on first access (PEP 562).
_LAZY = {
    "label_folder": ".run", "read_provenance": ".run", "CannyEdges": ".edges", "InstanceEdges": ".edges",
    "ColorPalette": ".palette", "ImageMetadata": ".metadata", "HedEdges": ".hed", "CaptionEmbedding": ".text_embed",
    "PoseKeypoints": ".pose", "PersonMask": ".pose", "OcrBoxes": ".ocr",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LABELERS", "MODEL_KINDS", "Labeler", "LabelerRegistry", "require", *_LAZY]
