"""open4m: an open, fast framework for massively multimodal masked modeling (4M).

The public API is small: the modality registry, the `FourM` model and its config, and the
loaders. Everything else lives in submodules and may change.
"""

from . import modalities
from .modalities import FOURM_7, FOURM_21, Kind, Modality, register
from .model import FourMConfig, preset

__version__ = "0.1.0"

__all__ = ["modalities", "Modality", "Kind", "register", "FOURM_7", "FOURM_21", "FourMConfig", "preset", "__version__"]
