"""open4m: an open, fast framework for massively multimodal masked modeling (4M).

The public API is small: the modality registry, the `FourM` model and its config, the loaders,
the sampler and its schedules. Everything else lives in submodules and may change. Tokenizer and
generation entry points are imported on first use so `import open4m` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import modalities
from .modalities import FOURM_7, FOURM_21, Kind, Modality, register
from .model import FourM, FourMConfig, FourMEncoder, preset

__version__ = "0.1.0"


def load_model(source: str, **kwargs: Any) -> FourM:
    """A FourM from a released name (`4M-21_B`), a Hub repo id, a release `.safetensors` file or a Hub-layout folder."""
    return FourM.from_pretrained(source, **kwargs)


_LAZY = {
    "load_tokenizer": "open4m.tokenizers",
    "list_pretrained": "open4m.pretrained",
    "Sampler": "open4m.generation",
    "GenerationSchedule": "open4m.generation",
    "build_schedule": "open4m.generation",
    "pipeline": "open4m.generation.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'open4m' has no attribute {name!r}")


__all__ = ["modalities", "Modality", "Kind", "register", "FOURM_7", "FOURM_21", "FourM", "FourMConfig", "FourMEncoder",
           "preset", "load_model", "load_tokenizer", "list_pretrained", "Sampler", "GenerationSchedule", "build_schedule", "pipeline", "__version__"]
