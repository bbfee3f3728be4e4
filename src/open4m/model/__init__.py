"""The FourM encoder-decoder, its configuration and checkpoint I/O, and its encoder as a ViT backbone."""

from .checkpoint import CheckpointError, load_config
from .compiled import compile_model
from .config import PRESETS, FourMConfig, preset
from .encoder import FourMEncoder
from .fourm import FourM, LossOutput

__all__ = ["FourM", "LossOutput", "FourMConfig", "FourMEncoder", "PRESETS", "preset", "load_config", "CheckpointError",
           "compile_model"]
