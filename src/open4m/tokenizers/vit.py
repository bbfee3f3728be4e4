"""ViT encoder and decoder of the image-like VQ-VAEs, with the official module names and presets.

Parameter names (``pos_emb``, ``proj``, ``blocks.{i}.attn.qkv`` ...) follow the released tokenizer
checkpoints so their state dicts load unchanged. Positional embeddings are stored channels-first
``(1, D, nh, nw)`` at the training grid and resized bicubically to the grid of every input, which is
what lets one tokenizer run at 224 to 448 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError

__all__ = ["ViTSize", "VIT_PRESETS", "resolve_vit_size", "sincos_pos_emb_2d", "ViTEncoder", "ViTDecoder"]


@dataclass(frozen=True)
class ViTSize:
    """Width, depth and heads of a ViT: what a preset name stands for."""

    dim: int
    depth: int
    heads: int
    mlp_ratio: float = 4.0


# The released presets, plus `vit_t` (dim 64, depth 2, heads 2) used by the reference test fixtures.
VIT_PRESETS: dict[str, ViTSize] = {
    "vit_t": ViTSize(64, 2, 2),
    "vit_s": ViTSize(512, 8, 8),
    "vit_b": ViTSize(768, 12, 12),
    "vit_l": ViTSize(1024, 24, 16),
}


def resolve_vit_size(name: str, dim: int | None = None, depth: int | None = None, heads: int | None = None) -> ViTSize:
    """`vit_b_enc`/`vit_b_dec`/`vit_b` -> its size; explicit dim/depth/heads override the preset.

    ``name="vit"`` with all three sizes given builds a custom ViT.
    """
    base = name.removesuffix("_enc").removesuffix("_dec")
    if base in VIT_PRESETS:
        size = VIT_PRESETS[base]
        return ViTSize(dim or size.dim, depth or size.depth, heads or size.heads, size.mlp_ratio)
    if base == "vit" and dim and depth and heads:
        return ViTSize(dim, depth, heads)
    raise ConfigError(
        f"unknown ViT type {name!r}: use one of {sorted(k + '_enc' for k in VIT_PRESETS)} (or *_dec), "
        "or 'vit' with explicit dim, depth and heads"
    )


def sincos_pos_emb_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2D sin-cos embedding ``(1, dim, h, w)``: [sin(x), cos(x), sin(y), cos(y)] blocks (MoCo v3)."""
    if dim % 4:
        raise ConfigError(f"2D sin-cos positional embeddings need a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    ox, oy = xs.reshape(-1, 1) * omega, ys.reshape(-1, 1) * omega
    emb = torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1)  # (h*w, dim)
    return emb.t().reshape(1, dim, h, w)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"ViT width {dim} must be divisible by its number of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, GELU MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvNeXtBlock(nn.Module):
    """Depthwise-7x7 ConvNeXt block; two of them after the decoder soften patch seams."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class _ViTBody(nn.Module):
    """What encoder and decoder share: frozen sin-cos positions, blocks, optional tanh post-MLP."""

    def __init__(self, size: ViTSize, grid: tuple[int, int], post_mlp: bool) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("pos_emb", sincos_pos_emb_2d(grid[0], grid[1], size.dim))
        self.blocks = nn.Sequential(*[Block(size.dim, size.heads, size.mlp_ratio) for _ in range(size.depth)])
        if post_mlp:
            self.norm_mlp = nn.LayerNorm(size.dim, eps=1e-6)
            self.post_mlp = Mlp(size.dim, int(size.mlp_ratio * size.dim), act=nn.Tanh)

    def add_positions(self, tokens: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        pos = self.pos_emb
        if pos.shape[-2:] != (nh, nw):
            pos = F.interpolate(pos, size=(nh, nw), mode="bicubic", align_corners=False)
        return tokens + pos.flatten(2).transpose(1, 2).to(tokens.dtype)

    def apply_post_mlp(self, x: torch.Tensor, full_precision: bool) -> torch.Tensor:
        if not hasattr(self, "post_mlp"):
            return x
        if full_precision:  # the encoder's post-MLP feeds the quantizer: keep it in fp32 as trained
            with torch.autocast(device_type=x.device.type, enabled=False):
                x = x.float()
                return x + self.post_mlp(self.norm_mlp(x))
        return x + self.post_mlp(self.norm_mlp(x))


class ViTEncoder(_ViTBody):
    """Image or feature map ``(B, C, H, W)`` -> latent grid ``(B, D, H/P, W/P)``.

    ``patch_proj=False`` (feature maps) uses a 1x1 projection, so every input pixel is one token.
    """

    def __init__(self, in_channels: int, size: ViTSize, patch_size: int, image_size: int, *,
                 patch_proj: bool = True, post_mlp: bool = False) -> None:
        self.patch = patch_size if patch_proj else 1
        if image_size % patch_size:
            raise ConfigError(f"image size {image_size} must be a multiple of the patch size {patch_size}")
        super().__init__(size, (image_size // patch_size, image_size // patch_size), post_mlp)
        self.proj = nn.Conv2d(in_channels, size.dim, kernel_size=self.patch, stride=self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.proj.in_channels:
            raise DataError(f"ViT encoder expects input (B, {self.proj.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % self.patch or x.shape[-1] % self.patch:
            raise DataError(f"input size {tuple(x.shape[-2:])} must be a multiple of the patch size {self.patch}")
        feats = self.proj(x)
        nh, nw = feats.shape[-2:]
        tokens = self.add_positions(feats.flatten(2).transpose(1, 2), nh, nw)
        tokens = self.apply_post_mlp(self.blocks(tokens), full_precision=True)
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, nh, nw)


class ViTDecoder(_ViTBody):
    """Latent grid ``(B, D, nh, nw)`` -> output ``(B, C, nh*P, nw*P)`` via a per-token linear unpatchify."""

    def __init__(self, out_channels: int, size: ViTSize, patch_size: int, image_size: int, *,
                 patch_proj: bool = True, post_mlp: bool = False, out_conv: bool = False) -> None:
        if image_size % patch_size:
            raise ConfigError(f"image size {image_size} must be a multiple of the patch size {patch_size}")
        super().__init__(size, (image_size // patch_size, image_size // patch_size), post_mlp)
        self.out_channels = out_channels
        self.patch = patch_size if patch_proj else 1
        self.out_proj = nn.Linear(size.dim, out_channels * self.patch * self.patch)
        if out_conv:
            self.out_conv = nn.Sequential(ConvNeXtBlock(out_channels), ConvNeXtBlock(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, nh, nw = x.shape
        tokens = self.add_positions(x.flatten(2).transpose(1, 2), nh, nw)
        tokens = self.apply_post_mlp(self.blocks(tokens), full_precision=False)
        p, c = self.patch, self.out_channels
        out = self.out_proj(tokens).reshape(b, nh, nw, c, p, p)
        out = out.permute(0, 3, 1, 4, 2, 5).reshape(b, c, nh * p, nw * p)
        if hasattr(self, "out_conv"):
            out = self.out_conv(out)
        return out
