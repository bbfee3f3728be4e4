"""open4m: an open, fast framework for massively multimodal masked modeling (4M).

The public API is small: the modality registry, the `FourM` model and its config, the loaders,
the sampler and its schedules. Everything else lives in submodules and may change. Every public
name is imported on first access (module `__getattr__`), so `import open4m` imports no torch and
`open4m --help` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time every name below is imported on first use
    from . import modalities
    from .generation import GenerationSchedule, Sampler, build_schedule
    from .generation.pipeline import pipeline
    from .modalities import FOURM_7, FOURM_21, Kind, Modality, register
    from .model import FourM, FourMConfig, FourMEncoder, preset
    from .pretrained import list_pretrained
    from .tokenizers import load_tokenizer

__version__ = "0.1.0"


def load_model(source: str, **kwargs: Any) -> FourM:
    """A FourM from a released name (`4M-21_B`), a Hub repo id, a release `.safetensors` file or a Hub-layout folder."""
    from .model import FourM

    return FourM.from_pretrained(source, **kwargs)


# Public name -> the module defining it. Nothing heavy (torch, numpy) is imported by `import open4m`:
# `open4m --help` and `from open4m.errors import ...` stay instant.
_LAZY = {
    "modalities": "open4m.modalities",
    "Modality": "open4m.modalities",
    "Kind": "open4m.modalities",
    "register": "open4m.modalities",
    "FOURM_7": "open4m.modalities",
    "FOURM_21": "open4m.modalities",
    "FourM": "open4m.model",
    "FourMConfig": "open4m.model",
    "FourMEncoder": "open4m.model",
    "preset": "open4m.model",
    "load_tokenizer": "open4m.tokenizers",
    "list_pretrained": "open4m.pretrained",
    "Sampler": "open4m.generation",
    "GenerationSchedule": "open4m.generation",
    "build_schedule": "open4m.generation",
    "pipeline": "open4m.generation.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'open4m' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module == f"open4m.{name}" else getattr(mod, name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    """The public API (resolved or not) and the submodules imported so far; not this file's own helpers."""
    return sorted((set(globals()) | set(__all__)) - {"Any", "TYPE_CHECKING", "importlib"})


__all__ = ["modalities", "Modality", "Kind", "register", "FOURM_7", "FOURM_21", "FourM", "FourMConfig", "FourMEncoder",
           "preset", "load_model", "load_tokenizer", "list_pretrained", "Sampler", "GenerationSchedule", "build_schedule",
           "pipeline", "__version__"]
