"""The tokenizer of every official 4M-21 modality: kind and architecture, by modality name.

These mirror the released tokenizers (reference-anatomy §6.1): which class, encoder, codebook,
decoder and token layout each modality uses. ``official_config(name)`` gives the config to train one
from scratch at the official size (the RGB/depth/normal/edge DiVAEs with the official patched UNet
decoder and diffusion settings: x0 prediction, linear betas rescaled to zero terminal SNR,
thresholding); ``size="tiny"`` shrinks the networks (not the data layout) for tests and quick CPU
runs.

Each preset also carries its input convention (``preprocess``, see :mod:`open4m.tokenizers.preprocess`)
wherever the architecture alone would imply the wrong one: edges in [-1, 1] (not standardised like
depth), SAM instance masks in [0, 1].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .config import DiVAEConfig, VQVAEConfig

__all__ = ["TokenizerSpec", "OFFICIAL_TOKENIZERS", "official_config", "tiny_config", "EDGE_PREPROCESS",
           "MASK_PREPROCESS", "EDGE_MODALITIES"]


@dataclass(frozen=True)
class TokenizerSpec:
    kind: str  # 'vqvae' | 'divae' | 'mlp'
    tokens: str  # the token modality it produces
    config: dict[str, Any]


_VIT_B = {"enc_type": "vit_b_enc", "dec_type": "vit_b_dec"}
_GLOBAL = {"image_size": 1, "patch_size": 1, "enc_type": "BottleneckMLP/B_6-Wi_1024",
           "dec_type": "BottleneckMLP/B_6-Wi_1024", "quant_type": "memcodes", "num_codebooks": 16,
           "codebook_size": 8192, "latent_dim": 1024}


#: Edge maps (Canny, SAM and HED edges) as the official edge DiVAE sees them: one channel, 0 (no edge) -> -1,
#: 1 -> +1 (the official RGB transform with Inception mean = std = 0.5). The architecture alone (one channel,
#: patch projection) would imply depth's per-image standardisation, which blows a mostly-empty edge map up to
#: values near 1e5 (the tokenizer loss then climbs to 1e8 instead of falling).
EDGE_PREPROCESS: dict[str, Any] = {"input": "image", "mean": [0.5], "std": [0.5], "interpolation": "bilinear"}
#: SAM instance masks: one binary instance cropped to its box and rasterised at 64x64, fed in [0, 1] with no
#: normalisation (official SAMInstanceTransform; the decoder returns logits, trained with binary cross-entropy).
MASK_PREPROCESS: dict[str, Any] = {"input": "image", "mean": [0.0], "std": [1.0], "interpolation": "bilinear"}
#: The modalities that share the edge tokenizer path (`edge_8k_224-512` and its input convention).
EDGE_MODALITIES: tuple[str, ...] = ("canny_edge", "sam_edge", "hed_edge")


def _divae(channels: int, codebook: int, post_mlp: bool = False, **extra: Any) -> dict[str, Any]:
    return {"image_size": 224, "n_channels": channels, "enc_type": "vit_b_enc", "patch_size": 16,
            "codebook_size": codebook, "latent_dim": 32, "post_mlp": post_mlp, "dec_type": "unet_patched",
            "beta_schedule": "linear", "prediction_type": "sample", "zero_terminal_snr": True, "thresholding": True,
            "clip_sample": True, "scheduler": "ddim", **extra}


def _edge(tokens: str) -> TokenizerSpec:
    return TokenizerSpec("divae", tokens, _divae(1, 8192, preprocess=EDGE_PREPROCESS))


OFFICIAL_TOKENIZERS: dict[str, TokenizerSpec] = {
    "rgb": TokenizerSpec("divae", "tok_rgb", _divae(3, 16384, post_mlp=True)),
    "depth": TokenizerSpec("divae", "tok_depth", _divae(1, 8192)),
    "normal": TokenizerSpec("divae", "tok_normal", _divae(3, 8192)),
    "canny_edge": _edge("tok_canny_edge"),
    "sam_edge": _edge("tok_sam_edge"),
    "hed_edge": _edge("tok_hed_edge"),  # open4m's own HED edges, on the official edge tokenizer's path
    "semseg_coco": TokenizerSpec("vqvae", "tok_semseg", dict(_VIT_B, image_size=224, n_channels=64, n_labels=134,
                                                            patch_size=16, codebook_size=4096, post_mlp=True)),
    "CLIP-B16": TokenizerSpec("vqvae", "tok_clip", dict(_VIT_B, image_size=224, n_channels=512, patch_size=16,
                                                        patch_proj=False, codebook_size=8192, post_mlp=True)),
    "DINOv2-B14": TokenizerSpec("vqvae", "tok_dinov2", dict(_VIT_B, image_size=224, n_channels=768, patch_size=14,
                                                            patch_proj=False, codebook_size=8192, post_mlp=True)),
    "ImageBind-H14": TokenizerSpec("vqvae", "tok_imagebind", dict(_VIT_B, image_size=224, n_channels=1280, patch_size=14,
                                                                  patch_proj=False, codebook_size=8192, post_mlp=True)),
    "DINOv2-B14-global": TokenizerSpec("mlp", "tok_dinov2_global", dict(_GLOBAL, n_channels=768)),
    "ImageBind-H14-global": TokenizerSpec("mlp", "tok_imagebind_global", dict(_GLOBAL, n_channels=1280)),
    "sam_mask": TokenizerSpec("vqvae", "sam_instance", dict(_VIT_B, image_size=64, n_channels=1, patch_size=16,
                                                            codebook_size=1024, latent_dim=1024, out_conv=True,
                                                            preprocess=MASK_PREPROCESS)),
    "human_poses": TokenizerSpec("mlp", "human_poses", dict(_GLOBAL, n_channels=207, num_codebooks=8, codebook_size=1024,
                                                            enc_type="BottleneckMLP/B_6-Wi_1024")),
}

_TINY = {"vit_b_enc": "vit_t_enc", "vit_b_dec": "vit_t_dec", "BottleneckMLP/B_6-Wi_1024": "BottleneckMLP/B_1-Wi_64",
         "unet_patched": "unet_patched_t"}


def official_config(name: str, size: str = "official") -> tuple[str, dict[str, Any]]:
    """-> (kind, config fields) of modality ``name``'s tokenizer; ``size='tiny'`` for a small network."""
    if name not in OFFICIAL_TOKENIZERS:
        raise ConfigError(f"no official tokenizer for {name!r}; known: {sorted(OFFICIAL_TOKENIZERS)}")
    if size not in ("official", "tiny"):
        raise ConfigError(f"size must be 'official' or 'tiny', got {size!r}")
    spec = OFFICIAL_TOKENIZERS[name]
    cfg = copy.deepcopy(dict(spec.config, modality=name))  # callers may edit it; the table stays as released
    if size == "tiny":
        cfg = tiny_config(spec.kind, cfg)
        if spec.kind == "mlp":
            cfg["latent_dim"] = 4 * cfg["num_codebooks"]
        if cfg.get("latent_dim", 32) > 64:
            cfg["latent_dim"] = 32
    return spec.kind, cfg


def tiny_config(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` of a ``kind`` tokenizer config with its networks shrunk: each preset encoder / decoder name, given
    or the kind's default (a ViT-B: 171 M parameters for a VQ-VAE), swapped for its tiny version. For the tiny
    size of a tokenizer that is not a modality's official one (``train-tokenizer --kind vqvae --size tiny``)."""
    if kind in ("vqvae", "divae"):  # an MLP tokenizer has no default network to shrink: its preset names one
        defaults = DiVAEConfig() if kind == "divae" else VQVAEConfig()
        fields = {"enc_type": defaults.enc_type, "dec_type": defaults.dec_type, **fields}
    return {k: _TINY.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
