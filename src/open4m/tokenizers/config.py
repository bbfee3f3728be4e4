"""Tokenizer configs: one dataclass per tokenizer class, readable from the official metadata.

Field names are the official constructor arguments (``enc_type``, ``n_channels``, ``quant_type`` ...)
so a released checkpoint's safetensors metadata becomes a config without renaming. Official
metadata stores every value as a Python-literal string (``"True"``, ``"None"``, ``"64"``); values are
converted by each field's declared type, so a string field never turns into a bool by accident.
Keys the official code accepts but that change nothing at inference (``sync_codebook``,
``ckpt_path`` ...) are dropped; any other unknown key is an error that names the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from ..errors import ConfigError

__all__ = ["VQVAEConfig", "DiVAEConfig", "OFFICIAL_DIVAE_DEFAULTS", "config_from_dict", "config_to_dict", "config_to_metadata", "parse_official_value"]

# Official keys that only matter for training bookkeeping or distributed runs.
_IGNORED_KEYS = frozenset({
    "sync_codebook", "ckpt_path", "ignore_keys", "freeze_enc", "code_replacement_policy", "norm_latents",
    "config", "cls_free_guidance_dropout", "masked_cfg", "masked_cfg_low", "masked_cfg_high",
})

# What the official DiVAE constructor assumes for keys its released metadata may leave out.
OFFICIAL_DIVAE_DEFAULTS: dict[str, Any] = {
    "dec_type": "unet_patched", "num_train_timesteps": 1000, "scheduler": "ddpm", "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction", "clip_sample": False, "thresholding": True, "zero_terminal_snr": True,
    "conditioning": "concat", "dec_transformer_dropout": 0.2,
}


@dataclass
class VQVAEConfig:
    """A VQ-VAE: encoder (ViT or bottleneck MLP) -> 1x1 proj -> quantizer -> 1x1 proj -> decoder."""

    image_size: int = 224
    n_channels: int = 3
    n_labels: int | None = None  # semantic segmentation: class ids are embedded to n_channels
    enc_type: str = "vit_b_enc"  # vit_{t,s,b,l}_enc, 'vit' + enc_dim/depth/heads, or BottleneckMLP/B_n-Wi_w
    dec_type: str = "vit_b_dec"
    patch_proj: bool = True  # False for feature maps: 1x1 "patches"
    post_mlp: bool = False  # tanh MLP after the encoder (and before the decoder's output projection)
    patch_size: int = 16
    quant_type: str = "lucid"  # 'lucid' (cosine EMA VQ) or 'memcodes'
    codebook_size: int = 16384
    num_codebooks: int = 1
    latent_dim: int = 32
    norm_codes: bool = True
    ema_decay: float = 0.99
    threshold_ema_dead_code: float = 0.25
    commitment_weight: float = 1.0
    kmeans_init: bool = False
    out_conv: bool = False
    undo_std: bool = False  # input arrives ImageNet-normalised; map it back to [-1, 1] first
    image_size_enc: int | None = None
    image_size_dec: int | None = None
    patch_size_dec: int | None = None
    enc_dim: int | None = None  # explicit ViT sizes (override the preset's)
    enc_depth: int | None = None
    enc_heads: int | None = None
    dec_dim: int | None = None
    dec_depth: int | None = None
    dec_heads: int | None = None
    modality: str | None = None  # the registry name this tokenizer serves, if known
    preprocess: dict[str, Any] = field(default_factory=dict)  # see open4m.tokenizers.preprocess
    tokenizer_class: str = "vqvae"

    def __post_init__(self) -> None:
        if self.quant_type not in ("lucid", "memcodes"):
            raise ConfigError(f"quant_type must be 'lucid' or 'memcodes', got {self.quant_type!r}")
        if self.quant_type == "lucid" and not self.norm_codes:
            raise ConfigError("only cosine-similarity codebooks (norm_codes=True) are supported, as in every 4M release")
        for name in ("image_size", "n_channels", "patch_size", "codebook_size", "num_codebooks", "latent_dim"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"config field {name} must be positive, got {getattr(self, name)}")

    @property
    def out_channels(self) -> int:
        return self.n_labels or self.n_channels

    @property
    def is_mlp(self) -> bool:
        return self.enc_type.startswith("BottleneckMLP")

    def grid(self, image_size: int | None = None) -> tuple[int, int]:
        """Token grid at ``image_size`` (default: the training size)."""
        if self.is_mlp:
            return (1, 1)
        n = (image_size or self.image_size) // self.patch_size  # feature maps arrive already at this grid
        return (n, n)


@dataclass
class DiVAEConfig(VQVAEConfig):
    """A VQ-VAE whose decoder is a diffusion model conditioned on the quantized latents.

    Decoder families (``dec_type``): ``unet`` is open4m's compact UNet; ``unet_patched`` (and any
    other ``unet_*`` name) the official patched ADM UNet of the released tokenizers. The official
    decoder's sizes come from the explicit ``dec_*`` fields, else from the preset name, else from
    the checkpoint's tensor shapes (see :mod:`open4m.tokenizers.unet`). ``uvit_*`` names are the
    official UViT decoders, sized by preset name and ``dec_*`` fields (see :mod:`open4m.tokenizers.uvit`).
    """

    dec_type: str = "unet"
    dec_channels: int | None = None  # base width (compact UNet default 64; official: model_channels)
    dec_channel_mult: tuple[int, ...] | None = None  # width multiplier per level (compact default (1, 2, 2))
    dec_patch_size: int | None = None  # pixels patchified P x P before the UNet (default 4)
    dec_num_res_blocks: int | None = None  # official UNet: res blocks per level
    dec_attention_resolutions: tuple[int, ...] | None = None  # official UNet: downsampling factors with attention
    dec_num_heads: int | None = None  # official UNet: attention heads (not inferable from shapes; releases use 1)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"  # linear, scaled_linear, squaredcos_cap_v2, shifted_cosine:<s>
    prediction_type: str = "v_prediction"  # or 'sample' (x0) or 'epsilon'
    zero_terminal_snr: bool = True
    thresholding: bool = False  # dynamic thresholding of the x0 estimate at each step (ratio 0.995, max 1)
    clip_sample: bool = False  # clamp the x0 estimate to [-1, 1] at each step (thresholding wins when both)
    scheduler: str = "ddim"  # the default sampler at decode time: 'ddpm' or 'ddim'
    conditioning: str = "concat"  # UViT decoders: the latent added to the transformer tokens, or 'xattn'
    dec_transformer_dropout: float = 0.0  # UViT decoders: transformer dropout in training (official recipe 0.2)
    tokenizer_class: str = "divae"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prediction_type not in ("v_prediction", "sample", "epsilon"):
            raise ConfigError(f"prediction_type must be 'v_prediction', 'sample' or 'epsilon', got {self.prediction_type!r}")
        if self.scheduler not in ("ddpm", "ddim"):
            raise ConfigError(f"scheduler must be 'ddpm' or 'ddim', got {self.scheduler!r}")
        if self.conditioning not in ("concat", "xattn"):
            raise ConfigError(f"conditioning must be 'concat' or 'xattn', got {self.conditioning!r}")
        if not 0.0 <= self.dec_transformer_dropout < 1.0:
            raise ConfigError(f"dec_transformer_dropout must lie in [0, 1), got {self.dec_transformer_dropout}")
        for name in ("dec_channels", "dec_patch_size", "dec_num_res_blocks", "dec_num_heads", "num_train_timesteps"):
            value = getattr(self, name)
            if value is not None and int(value) <= 0:
                raise ConfigError(f"config field {name} must be positive, got {value}")


_CLASSES: dict[str, type[VQVAEConfig]] = {"vqvae": VQVAEConfig, "divae": DiVAEConfig}


def parse_official_value(raw: Any) -> Any:
    """The official metadata convention: YAML-parse the string after mapping ``None`` to ``null``."""
    if not isinstance(raw, str):
        return raw
    try:
        parsed = yaml.safe_load(raw.replace("None", "null"))
        json.dumps(parsed)  # plain data only: no dates, no self-referencing lists YAML anchors build ("&a [*a]")
        return parsed
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):  # ValueError: a date YAML cannot build
        return raw


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert one raw value to the field's declared type, or say which field is wrong."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if value is None or value == "None":
            return None
        return _coerce(name, args[0], value)
    if tp is str:
        return str(value)
    parsed = parse_official_value(value) if isinstance(value, str) else value
    try:
        if tp is bool:
            if not isinstance(parsed, bool):
                raise TypeError
            return parsed
        if tp in (int, float):
            return tp(parsed)
        if origin is tuple:
            return tuple(int(v) for v in parsed)
        if origin is dict or tp is dict:
            if isinstance(parsed, str):
                parsed = json.loads(parsed)
            return dict(parsed)
    except (TypeError, ValueError, OverflowError, json.JSONDecodeError):  # overflow: an integer too large for a float
        raise ConfigError(f"config field {name!r}: cannot read {value!r} as {getattr(tp, '__name__', tp)}") from None
    return parsed


def _infer_class(raw: Mapping[str, Any]) -> str:
    if "tokenizer_class" in raw:
        return str(raw["tokenizer_class"])
    official_divae = "beta_schedule" in raw or str(raw.get("dec_type", "")).startswith(("unet", "uvit"))
    return "divae" if official_divae else "vqvae"


def config_from_dict(raw: Mapping[str, Any]) -> VQVAEConfig:
    """Official metadata or our own config dict -> the matching config dataclass."""
    kind = _infer_class(raw)
    if kind not in _CLASSES:
        raise ConfigError(f"unknown tokenizer_class {kind!r}; known: {sorted(_CLASSES)}")
    cls = _CLASSES[kind]
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names - _IGNORED_KEYS)
    if unknown:
        raise ConfigError(f"unknown {kind} config keys {unknown}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(k, hints[k], v) for k, v in raw.items() if k in names}
    if cls is DiVAEConfig and "tokenizer_class" not in raw:  # an official file: its constructor's defaults
        kwargs = {**OFFICIAL_DIVAE_DEFAULTS, **kwargs}
    return cls(**kwargs)


def config_to_metadata(config: VQVAEConfig) -> dict[str, str]:
    """Config -> safetensors metadata in the official convention (every value a literal string)."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    return out


def config_to_dict(config: VQVAEConfig) -> dict[str, Any]:
    """Config -> JSON-ready dict (the Hub layout's config.json)."""
    return dataclasses.asdict(config)
