"""The FourM encoder-decoder, its configuration and checkpoint I/O."""

from .config import FourMConfig, PRESETS, preset

__all__ = ["FourMConfig", "PRESETS", "preset"]
