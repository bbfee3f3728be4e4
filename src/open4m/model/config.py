"""FourM configuration: one dataclass, the official field names, presets by name.

The field names are exactly those of the official flat config (the safetensors metadata of the
released checkpoints), so a released config maps onto this dataclass one to one and a config we
write is readable by the official loader too.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import yaml

from .. import modalities
from ..errors import ConfigError

ACTIVATIONS = ("GELU", "SiLU", "ReLU")


@dataclass
class FourMConfig:
    """Architecture of a FourM encoder-decoder. Defaults are the official `FourM` defaults."""

    domains_in: list[str] = field(default_factory=lambda: list(modalities.FOURM_7))
    """Modalities the encoder accepts."""
    domains_out: list[str] = field(default_factory=lambda: [m for m in modalities.FOURM_7 if m != "rgb@224"])
    """Modalities the decoder predicts."""
    image_size: int = 224
    """Image size for image-like modalities whose registry entry has none (the global tokens)."""
    patch_size: int = 16
    """Patch size fallback for image-like modalities (the registry's value wins)."""
    dim: int = 768
    """Transformer width."""
    encoder_depth: int = 12
    decoder_depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    """Hidden width of the MLP as a multiple of dim (SwiGLU uses 2/3 of it)."""
    qkv_bias: bool = True
    proj_bias: bool = True
    mlp_bias: bool = True
    norm_bias: bool = True
    """LayerNorm with a learned bias; without it the bias is a fixed zero (a buffer, as officially)."""
    act_layer: str = "GELU"
    """MLP activation, the name of a torch.nn class: GELU, SiLU or ReLU."""
    gated_mlp: bool = False
    """SwiGLU-style gated MLP (fc2(act(fc1 x) * fc3 x))."""
    qk_norm: bool = False
    """LayerNorm over each head's queries and keys before the dot product."""
    decoder_causal_mask: bool = False
    """Plain causal decoder self-attention instead of the compressed per-target mask."""
    decoder_sep_mask: bool = True
    """Forbid decoder self-attention across modalities."""
    num_register_tokens: int = 0
    """Learned tokens prepended to the encoder input."""
    share_modality_embeddings: bool = True
    """One modality embedding shared by a modality's encoder and decoder embeddings."""
    drop_path_rate_encoder: float = 0.0
    drop_path_rate_decoder: float = 0.0
    shared_drop_path: bool = False
    """Encoder and decoder on one stochastic-depth ramp."""
    use_act_checkpoint: bool = False
    """Activation checkpointing of every block during training (trades compute for memory)."""

    def __post_init__(self) -> None:
        modalities.check_types(FourMConfig, {f.name: getattr(self, f.name) for f in fields(self)}, "FourM config")
        self.domains_in = list(self.domains_in)
        self.domains_out = list(self.domains_out)
        sizes = ("image_size", "patch_size", "dim", "encoder_depth", "num_heads")
        bad = [f"{k}={getattr(self, k)}" for k in sizes if getattr(self, k) < 1]
        bad += [f"{k}={getattr(self, k)}" for k in ("decoder_depth", "num_register_tokens") if getattr(self, k) < 0]
        bad += [f"mlp_ratio={self.mlp_ratio}"] if self.mlp_ratio <= 0 else []
        if bad:
            raise ConfigError(f"FourM config: {', '.join(bad)} out of range (sizes, depths and heads are positive)")
        if self.act_layer not in ACTIVATIONS:
            raise ConfigError(f"act_layer={self.act_layer!r} is not supported; use one of {ACTIVATIONS}")
        if self.dim % self.num_heads:
            raise ConfigError(f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if not self.domains_in:
            raise ConfigError("domains_in is empty: the encoder needs at least one input modality")
        for name in (*self.domains_in, *self.domains_out):
            modalities.get(name)  # raises a helpful error for unknown names

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        hidden = int(self.dim * self.mlp_ratio)
        return int(2 * hidden / 3) if self.gated_mlp else hidden

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_metadata(self) -> dict[str, str]:
        """Release-layout metadata: every value as its Python literal string, as officially."""
        return {k: str(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, strict: bool = True) -> "FourMConfig":
        """Build from a flat dict; unknown keys are errors naming the closest valid key.

        `strict=False` drops unknown keys instead (configs of future official versions).
        """
        known = {f.name for f in fields(cls)}
        unknown = [k for k in config if k not in known]
        if unknown and strict:
            msgs = []
            for k in unknown:
                close = difflib.get_close_matches(k, sorted(known), n=1)
                msgs.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(f"unknown FourM config key(s): {', '.join(msgs)}")
        return cls(**{k: v for k, v in config.items() if k in known})

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> "FourMConfig":
        """Parse release-layout safetensors metadata (Python-literal strings, YAML as fallback)."""
        parsed = {k: parse_literal(v) for k, v in metadata.items() if not k.startswith("__")}
        # Keys the official writer stores next to the architecture (e.g. training arguments).
        known = {f.name for f in fields(cls)}
        return cls.from_dict({k: v for k, v in parsed.items() if k in known}, strict=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def parse_literal(value: str) -> Any:
    """Parse one metadata value: a Python literal (`"['a', 'b']"`, `"True"`, `"1e-06"`), else YAML, else raw."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if len(value) <= 10_000:
        try:
            parsed = yaml.safe_load(value.replace("None", "null"))
            json.dumps(parsed)  # plain data only: no dates, no self-referencing lists YAML anchors build ("&a [*a]")
            return parsed
        except (yaml.YAMLError, ValueError, TypeError, RecursionError):  # ValueError: a date YAML cannot build
            pass
    return value


# ------------------------------------------------------------------------------------------
# Presets: the official sizes, in the three official architecture variants.
# ------------------------------------------------------------------------------------------
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(dim=384, encoder_depth=6, decoder_depth=6, num_heads=6),
    "small": dict(dim=512, encoder_depth=8, decoder_depth=8, num_heads=8),
    "base": dict(dim=768, encoder_depth=12, decoder_depth=12, num_heads=12),
    "large": dict(dim=1024, encoder_depth=24, decoder_depth=24, num_heads=16),
    "xlarge": dict(dim=2048, encoder_depth=24, decoder_depth=24, num_heads=32),
}
_DEPTH_TAG = {"tiny": "6e_6d", "small": "8e_8d", "base": "12e_12d", "large": "24e_24d", "xlarge": "24e_24d"}
VARIANTS: dict[str, dict[str, Any]] = {
    "gelu": dict(act_layer="GELU", gated_mlp=False, qkv_bias=True, proj_bias=True, mlp_bias=True, norm_bias=True),
    "swiglu_nobias": dict(act_layer="SiLU", gated_mlp=True, qkv_bias=False, proj_bias=False, mlp_bias=False,
                          norm_bias=False),
    "swiglu_qknorm_nobias": dict(act_layer="SiLU", gated_mlp=True, qkv_bias=False, proj_bias=False,
                                 mlp_bias=False, norm_bias=False, qk_norm=True),
}
PRESETS: dict[str, dict[str, Any]] = {
    f"fm_{size}_{_DEPTH_TAG[size]}_{variant}": {**dims, **arch}
    for size, dims in SIZES.items()
    for variant, arch in VARIANTS.items()
}


def preset(name: str, **overrides: Any) -> FourMConfig:
    """A config from a preset name (`fm_base_12e_12d_swiglu_nobias`, or short `base-swiglu_nobias`)."""
    key = name
    if key not in PRESETS and "-" in key:
        size, _, variant = key.partition("-")
        if size in SIZES:
            key = f"fm_{size}_{_DEPTH_TAG[size]}_{variant}"
    if key not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown FourM preset {name!r}.{hint} See `open4m info` for the list.")
    return FourMConfig.from_dict({**PRESETS[key], **overrides})  # a misspelt override names the closest key
