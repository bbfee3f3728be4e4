"""The official DiVAE decoder network: a patched ADM UNet conditioned on the quantized latent.

This is the network of every released diffusion tokenizer (RGB, depth, normals, edges:
``dec_type: unet_patched``). The noisy image is patchified ``P x P`` (``C·P²`` channels on a grid
``P`` times smaller, so a 224 px image costs the UNet what a 56 px one would), the latent is
nearest-upsampled to that grid and concatenated, an ADM UNet (Dhariwal & Nichol's guided-diffusion
layout) predicts on the grid, and the output is un-patchified.

Module names reproduce the released state dicts (``input_blocks.1.0.in_layers.2.weight``,
``middle_block.1.qkv.weight``, ``out.2.weight`` ...), so official weights load without renaming.
The sizes come from :class:`UNetSize`: a preset name (:data:`UNET_PRESETS`), explicit fields, or
:func:`infer_unet_size` reading them off a checkpoint's tensor shapes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError, DataError

__all__ = ["UNetSize", "UNET_PRESETS", "PatchedUNet", "infer_unet_size", "unet_preset"]


@dataclass(frozen=True)
class UNetSize:
    """Everything that shapes a patched UNet (the official constructor's arguments that matter).

    ``attention_resolutions`` are downsampling factors of the patch grid (4 = attention on the
    grid after two downsamplings), as in the official code. ``num_heads`` cannot be read off a
    checkpoint (heads split channels without changing any shape); every release uses 1.
    """

    model_channels: int
    num_res_blocks: int
    channel_mult: tuple[int, ...]
    attention_resolutions: tuple[int, ...]
    patch_size: int = 4
    num_heads: int = 1
    use_scale_shift_norm: bool = False

    def __post_init__(self) -> None:
        if self.model_channels <= 0 or self.model_channels % 32:
            raise ConfigError(f"UNet model_channels must be a positive multiple of 32 (GroupNorm uses 32 groups), "
                             f"got {self.model_channels}")
        if self.num_res_blocks < 1 or not self.channel_mult or self.patch_size < 1 or self.num_heads < 1:
            raise ConfigError(f"invalid UNet size {self}")

    @property
    def multiple(self) -> int:
        """Image sides must be divisible by this (patching, then one halving per extra level)."""
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)


#: Released size (``unet_patched``) and the tiny size of the parity fixture (``unet_patched_t``).
UNET_PRESETS: dict[str, UNetSize] = {
    "unet_patched": UNetSize(256, 3, (1, 2, 2, 2), (4, 8)),
    "unet_patched_t": UNetSize(32, 2, (1, 2, 2, 2), (4, 8)),
}


def unet_preset(dec_type: str) -> UNetSize | None:
    """The size a preset name stands for, or None for a name we do not know."""
    return UNET_PRESETS.get(dec_type)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels)


def _group_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm statistics in fp32 whatever the activation dtype (as the released decoders were trained)."""
    weight = None if norm.weight is None else norm.weight.float()
    bias = None if norm.bias is None else norm.bias.float()
    return F.group_norm(x.float(), norm.num_groups, weight, bias, norm.eps).to(x.dtype)


def denoiser_timesteps(x: torch.Tensor, t: torch.Tensor | int | float, multiple: int, channels: int,
                       what: str) -> torch.Tensor:
    """Check a diffusion decoder's noisy input and return its timesteps as one per sample, (B,)."""
    b, c, h, w = x.shape
    if h % multiple or w % multiple:
        raise DataError(f"this {what} decoder needs image sides divisible by {multiple}, got {h}x{w}")
    if c != channels:
        raise DataError(f"this {what} decoder denoises {channels}-channel images, got {c} channels")
    t = torch.as_tensor(t, device=x.device)
    return t.reshape(1).expand(b) if t.ndim == 0 else t


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t·f), sin(t·f)]`` of (possibly fractional) timesteps, shape (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the timestep embedding (or FiLM it), GroupNorm-SiLU-dropout-conv, skip."""

    def __init__(self, cin: int, emb_dim: int, cout: int, scale_shift: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * cout if scale_shift else cout))
        self.out_layers = nn.Sequential(_norm(cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm, act, conv = self.in_layers
        h = conv(act(_group_norm(norm, x)))
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        norm, act, drop, conv = self.out_layers
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = _group_norm(norm, h) * (1 + scale) + shift
        else:
            h = _group_norm(norm, h + e)
        return self.skip_connection(x) + conv(drop(act(h)))


class _Attention(nn.Module):
    """Self-attention over the grid positions; qkv is laid out head by head ([q_h, k_h, v_h] per head)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(f"attention over {channels} channels cannot be split into {heads} heads")
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        qkv = self.qkv(_group_norm(self.norm, flat)).reshape(b, self.heads, 3 * c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).chunk(3, dim=-1)  # each (b, heads, hw, ch)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h * w)
        return (flat + self.proj_out(out)).reshape(b, c, h, w)


class _Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Stage(nn.ModuleList):
    """One entry of input_blocks / output_blocks: layers applied in order, ResBlocks also get the embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, _ResBlock) else layer(x)
        return x


class PatchedUNet(nn.Module):
    """``forward(noisy (B, C, H, W), t, latent (B, D, h, w)) -> prediction (B, C, H, W)``."""

    def __init__(self, image_channels: int, cond_channels: int, size: UNetSize, dropout: float = 0.0) -> None:
        super().__init__()
        self.size, self.image_channels, self.cond_channels = size, image_channels, cond_channels
        p, mc = size.patch_size, size.model_channels
        io = image_channels * p * p
        emb_dim = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(cin: int, cout: int) -> _ResBlock:
            return _ResBlock(cin, emb_dim, cout, size.use_scale_shift_norm, dropout)

        ch = mc * size.channel_mult[0]
        self.input_blocks = nn.ModuleList([_Stage([nn.Conv2d(io + cond_channels, ch, 3, padding=1)])])
        skips, factor = [ch], 1
        for level, mult in enumerate(size.channel_mult):
            for _ in range(size.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mc * mult)]
                ch = mc * mult
                if factor in size.attention_resolutions:
                    layers.append(_Attention(ch, size.num_heads))
                self.input_blocks.append(_Stage(layers))
                skips.append(ch)
            if level != len(size.channel_mult) - 1:
                self.input_blocks.append(_Stage([_Downsample(ch)]))
                skips.append(ch)
                factor *= 2
        self.middle_block = _Stage([res(ch, ch), _Attention(ch, size.num_heads), res(ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(size.channel_mult))):
            for i in range(size.num_res_blocks + 1):
                layers = [res(ch + skips.pop(), mc * mult)]
                ch = mc * mult
                if factor in size.attention_resolutions:
                    layers.append(_Attention(ch, size.num_heads))
                if level and i == size.num_res_blocks:
                    layers.append(_Upsample(ch))
                    factor //= 2
                self.output_blocks.append(_Stage(layers))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(mc * size.channel_mult[0], io, 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int | float, cond: torch.Tensor) -> torch.Tensor:
        t = denoiser_timesteps(x, t, self.size.multiple, self.image_channels, "DiVAE")
        emb = self.time_embed(timestep_embedding(t, self.size.model_channels).to(self.time_embed[0].weight.dtype))
        p = self.size.patch_size
        h = F.pixel_unshuffle(x, p)  # channel order (c, ph, pw), as the official rearrange
        h = torch.cat([h, F.interpolate(cond.to(h.dtype), size=h.shape[-2:], mode="nearest")], dim=1)
        skips = []
        for stage in self.input_blocks:
            h = stage(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        norm, act, conv = self.out
        return F.pixel_shuffle(conv(act(_group_norm(norm, h))), p)


# -- reading the size off a checkpoint -----------------------------------------------------------
def infer_unet_size(state: Mapping[str, torch.Tensor], image_channels: int, cond_channels: int,
                    prefix: str = "decoder.", num_heads: int = 1) -> UNetSize:
    """The :class:`UNetSize` a patched-UNet state dict was built with, from its tensor shapes alone.

    Why: community checkpoints carry ``dec_type`` names we have never seen; their shapes still say
    everything but the number of attention heads (taken as ``num_heads``, 1 in every release).
    """
    def get(key: str) -> torch.Tensor:
        if prefix + key not in state:
            raise CheckpointError(f"cannot infer the UNet decoder's size: the checkpoint has no {prefix + key!r}; "
                             "set dec_channels, dec_num_res_blocks, dec_channel_mult and dec_attention_resolutions")
        return state[prefix + key]

    mc = get("time_embed.0.weight").shape[1]
    io = get("out.2.weight").shape[0]
    if io % image_channels or math.isqrt(io // image_channels) ** 2 != io // image_channels:
        raise CheckpointError(f"cannot infer the decoder's patch size: its output has {io} channels, not "
                         f"{image_channels}·P² for an integer P; set dec_patch_size")
    patch = math.isqrt(io // image_channels)
    first_in = get("input_blocks.0.0.weight").shape[1]
    if first_in != io + cond_channels:
        raise CheckpointError(f"the decoder's first conv takes {first_in} channels, but patch {patch} and a "
                         f"{cond_channels}-d latent make {io + cond_channels}; is latent_dim right?")
    indices = sorted({int(m.group(1)) for k in state
                      if (m := re.match(re.escape(prefix) + r"input_blocks\.(\d+)\.", k))})
    levels: list[list[int]] = [[]]
    attention: set[int] = set()
    for i in indices[1:]:
        if prefix + f"input_blocks.{i}.0.op.weight" in state:
            levels.append([])
            continue
        out_ch = get(f"input_blocks.{i}.0.in_layers.2.weight").shape[0]
        levels[-1].append(out_ch)
        if prefix + f"input_blocks.{i}.1.qkv.weight" in state:
            attention.add(2 ** (len(levels) - 1))
    blocks = {len(level) for level in levels}
    if len(blocks) != 1 or 0 in blocks or indices != list(range(len(indices))):
        raise CheckpointError("the decoder's input_blocks do not follow the patched-UNet layout (equal res blocks per "
                         "level, conv downsampling); set the dec_* size fields explicitly")
    mults = []
    for level in levels:
        if len(set(level)) != 1 or level[0] % mc:
            raise CheckpointError(f"the decoder's channel widths {level} are not one multiple of {mc} per level")
        mults.append(level[0] // mc)
    scale_shift = get("input_blocks.1.0.emb_layers.1.weight").shape[0] == 2 * levels[0][0]
    return UNetSize(mc, blocks.pop(), tuple(mults), tuple(sorted(attention)), patch, num_heads, scale_shift)


def with_overrides(size: UNetSize, **fields: object) -> UNetSize:
    """``size`` with the given non-None fields replaced (explicit config fields win over presets)."""
    return replace(size, **{k: v for k, v in fields.items() if v is not None})
