"""The FourM encoder-decoder, its configuration and checkpoint I/O."""

from .checkpoint import CheckpointError, load_config
from .config import PRESETS, FourMConfig, preset
from .fourm import FourM

__all__ = ["FourM", "FourMConfig", "PRESETS", "preset", "load_config", "CheckpointError"]
