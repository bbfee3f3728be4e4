"""The official UViT diffusion decoder: a small conv UNet around a transformer bottleneck.

4M defines this second DiVAE decoder family (``dec_type: uvit_*``, Hoogeboom et al.'s "simple
diffusion" U-ViT) besides the patched ADM UNet of the released tokenizers. No UViT checkpoint was
released; the published recipe (``ViTB-UViTB_1k_224*``) trains ``uvit_b_p4_f16`` with ``concat``
conditioning, v-prediction and a ``shifted_cosine:0.5`` schedule.

The network, for a noisy image ``(B, C, H, W)``:

* a stride-``P`` conv patchifies it; diffusers-style ResNet down blocks (GroupNorm-SiLU-conv, the
  timestep embedding added after the first conv) halve the grid between levels, and one more
  strided conv halves it again when ``downsample_before_mid`` (the ``f16`` presets);
* a transformer runs on that grid (1/16 of the image for ``f16``: the encoder's token grid). Each
  block is pre-norm self-attention + GELU MLP, modulated by the timestep embedding (adaLN shift and
  scale, adaLN-Zero gates). The latent enters either added to the tokens (``concat``: projected,
  nearest-resized to the grid, a learned mask token where ``cond_mask`` is True) or by
  cross-attention in every block (``xattn``: ``cond_mask`` hides latent positions). ``_longskip``
  presets join block ``i`` and block ``L-1-i`` through a linear layer on their concatenation;
* ResNet up blocks mirror the down path with skip connections, and a transposed conv unpatchifies.

Module names reproduce the official state dicts (``down_blocks.0.resnets.1.conv1.weight``,
``mid_block.mid_block.3.adaLN_gate.weight``, ``downsample_mid.Conv2d_0.weight`` ...), so official
weights load without renaming. Sizes come from :class:`UViTSize`: a preset (:data:`UVIT_PRESETS`)
with explicit overrides (:func:`resolve_uvit_size`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import additive_mask, merge_heads, split_heads
from .unet import _group_norm, _Upsample, denoiser_timesteps, timestep_embedding
from .vit import sincos_pos_emb_2d
from ..errors import ConfigError

__all__ = ["UViTSize", "UVIT_PRESETS", "UViT", "resolve_uvit_size", "CONDITIONINGS"]

CONDITIONINGS = ("concat", "xattn")


@dataclass(frozen=True)
class UViTSize:
    """Everything that shapes a UViT (the official constructor's arguments its presets set).

    ``block_out_channels`` are the UNet widths per level (one halving between levels);
    ``downsample_before_mid`` halves once more before the transformer. ``mid_hw_posemb`` is the side
    of the stored positional-embedding table (resized to the transformer grid at run time; the
    official constructor's default 32 for every preset). ``norm_num_groups`` is the GroupNorm group
    count (32 in every preset; the tiny test preset uses fewer to stay small).
    """

    block_out_channels: tuple[int, ...]
    mid_layers: int
    mid_num_heads: int
    mid_dim: int
    patch_size: int = 4
    layers_per_block: int = 2
    downsample_before_mid: bool = True
    mid_mlp_ratio: float = 4.0
    mid_qkv_bias: bool = True
    mid_use_long_skip: bool = False
    mid_hw_posemb: int = 32
    norm_num_groups: int = 32

    def __post_init__(self) -> None:
        if not self.block_out_channels or any(c <= 0 or c % self.norm_num_groups for c in self.block_out_channels):
            raise ConfigError(f"UViT block_out_channels {self.block_out_channels} must be positive multiples of "
                             f"{self.norm_num_groups} (the GroupNorm groups)")
        if min(self.mid_layers, self.mid_num_heads, self.patch_size, self.layers_per_block, self.mid_hw_posemb) < 1:
            raise ConfigError(f"invalid UViT size {self}")
        if self.mid_dim % self.mid_num_heads or self.mid_dim % 4:
            raise ConfigError(f"UViT mid_dim {self.mid_dim} must be divisible by 4 (2D sin-cos positions) and by "
                             f"mid_num_heads {self.mid_num_heads}")
        if self.mid_use_long_skip and self.mid_layers % 2 == 0:
            raise ConfigError(f"UViT long skips pair blocks around a middle one: mid_layers must be odd, "
                             f"got {self.mid_layers}")

    @property
    def multiple(self) -> int:
        """Image sides must be divisible by this: the image-to-transformer-grid factor (the ``f`` of the names)."""
        return self.patch_size * 2 ** (len(self.block_out_channels) - 1 + int(self.downsample_before_mid))

    @property
    def time_dim(self) -> int:
        return 4 * self.block_out_channels[0]


def _preset(dim: int, depth: int, heads: int, *, widths: tuple[int, ...] = (128, 256),
            downsample_before_mid: bool = True, long_skip: bool = False) -> UViTSize:
    return UViTSize(widths, depth, heads, dim, downsample_before_mid=downsample_before_mid, mid_use_long_skip=long_skip)


_TINY = dict(patch_size=2, downsample_before_mid=True, mid_hw_posemb=8, norm_num_groups=4)
_EXTRA_CONV = dict(widths=(128, 256, 512), downsample_before_mid=False)

#: The official presets (``fourm/vq/models/uvit.py``), plus the tiny ones of the parity test files.
UVIT_PRESETS: dict[str, UViTSize] = {
    "uvit_b_p4_f16": _preset(768, 12, 12),
    "uvit_l_p4_f16": _preset(1024, 24, 16),
    "uvit_h_p4_f16": _preset(1280, 32, 16),
    "uvit_b_p4_f16_longskip": _preset(768, 13, 12, long_skip=True),
    "uvit_l_p4_f16_longskip": _preset(1024, 25, 16, long_skip=True),
    "uvit_b_p4_f8": _preset(768, 12, 12, downsample_before_mid=False),
    "uvit_l_p4_f8": _preset(1024, 24, 16, downsample_before_mid=False),
    "uvit_b_p4_f16_extraconv": _preset(768, 12, 12, **_EXTRA_CONV),
    "uvit_l_p4_f16_extraconv": _preset(1024, 24, 16, **_EXTRA_CONV),
    "uvit_t_p2_f8": UViTSize((8, 16), 2, 2, 16, **_TINY),
    "uvit_t_p2_f8_longskip": UViTSize((8, 16), 3, 2, 16, mid_use_long_skip=True, **_TINY),
}


def resolve_uvit_size(dec_type: str, *, channels: int | None = None, channel_mult: tuple[int, ...] | None = None,
                      patch_size: int | None = None, layers_per_block: int | None = None, dim: int | None = None,
                      depth: int | None = None, heads: int | None = None) -> UViTSize:
    """A UViT size from a preset name, explicit values overriding it (``channels`` × ``channel_mult`` are the widths).

    A name we have no preset of needs every size; its layout flags come from the name as in the
    official ones: ``_longskip`` for long skips, and ``_f<N>`` (N the image-to-grid factor) decides
    whether one more downsampling precedes the transformer (none without an ``_f<N>``).
    """
    base = UVIT_PRESETS.get(dec_type)
    if base is None:
        required = {"dec_channels": channels, "dec_channel_mult": channel_mult, "dec_dim": dim, "dec_depth": depth,
                    "dec_heads": heads}
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ConfigError(f"dec_type {dec_type!r} is not a UViT preset ({', '.join(sorted(UVIT_PRESETS))}): "
                             f"set {', '.join(missing)} (and optionally dec_patch_size, dec_num_res_blocks)")
        widths = tuple(channels * m for m in channel_mult)
        patch = patch_size or 4
        return UViTSize(widths, depth, heads, dim, patch_size=patch, layers_per_block=layers_per_block or 2,
                        downsample_before_mid=_downsample_before_mid(dec_type, patch, len(widths)),
                        mid_use_long_skip="longskip" in dec_type.split("_"))
    first = base.block_out_channels[0]
    mult = channel_mult or tuple(c // first for c in base.block_out_channels)
    widths = tuple((channels or first) * m for m in mult)
    overrides = dict(patch_size=patch_size, layers_per_block=layers_per_block, mid_dim=dim, mid_layers=depth,
                     mid_num_heads=heads)
    return replace(base, block_out_channels=widths, **{k: v for k, v in overrides.items() if v is not None})


def _downsample_before_mid(dec_type: str, patch: int, levels: int) -> bool:
    match = re.search(r"_f(\d+)(?:_|$)", dec_type)
    if match is None:
        return False
    factor, unet_factor = int(match.group(1)), patch * 2 ** (levels - 1)
    if factor not in (unet_factor, 2 * unet_factor):
        raise ConfigError(f"dec_type {dec_type!r}: patch {patch} and {levels} UNet levels give a factor of "
                         f"{unet_factor} (or {2 * unet_factor} with a downsampling before the transformer), "
                         f"not {factor}")
    return factor == 2 * unet_factor


# -- normalisation in fp32, whatever the weights' dtype ------------------------------------------
class _GroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics are taken in fp32 (bf16/fp16 weights run without drifting)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _group_norm(self, x)


class _LayerNorm(nn.LayerNorm):
    """LayerNorm whose statistics are taken in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight.float(), self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


# -- the convolutional path (diffusers' ResnetBlock2D / DownBlock2D / UpBlock2D layout) -----------
class _ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv, + the projected timestep embedding, GroupNorm-SiLU-conv; 1x1 conv skip if widths differ."""

    def __init__(self, cin: int, cout: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(time_dim, cout)
        self.norm2 = _GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class _Downsample(nn.Module):
    """Strided 3x3 conv. (Upsampling is the ADM UNet's ``_Upsample``: the same layer under the same name.)"""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _MidDownsample(_Downsample):
    """The downsampling before the transformer. Its conv is also registered as ``Conv2d_0``, as in the
    official module, so the state dict holds both names (one tensor) and official files load strictly."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.Conv2d_0 = self.conv


class _DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_layers: int, time_dim: int, groups: int, downsample: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            _ResnetBlock(cin if i == 0 else cout, cout, time_dim, groups) for i in range(num_layers))
        self.downsamplers = nn.ModuleList([_Downsample(cout)]) if downsample else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Runs the block, appending every intermediate output to ``skips`` for the up path."""
        for resnet in self.resnets:
            x = resnet(x, temb)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x


class _UpBlock(nn.Module):
    def __init__(self, cin: int, skip_last: int, cout: int, num_layers: int, time_dim: int, groups: int,
                 upsample: bool) -> None:
        super().__init__()
        # ResNet i takes the previous output (the block input for i = 0) and one skip; the last skip is
        # the shallower level's downsampled output (conv_in's for the top level), ``skip_last`` wide.
        ins = [(cin if i == 0 else cout) + (skip_last if i == num_layers - 1 else cout) for i in range(num_layers)]
        self.resnets = nn.ModuleList(_ResnetBlock(c, cout, time_dim, groups) for c in ins)
        self.upsamplers = nn.ModuleList([_Upsample(cout)]) if upsample else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Runs the block, concatenating the latest ``skips`` (popped) before each ResNet."""
        for resnet in self.resnets:
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class _TimestepEmbedding(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


# -- the transformer bottleneck ---------------------------------------------------------------
def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self.proj_drop(self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v))))


class _CrossAttention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int, qkv_bias: bool, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        k, v = (split_heads(t, self.heads) for t in self.kv(context).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(split_heads(self.q(x), self.heads), k, v, attn_mask=bias)
        return self.proj_drop(self.proj(merge_heads(out)))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(F.gelu(self.fc1(x))))


class _Block(nn.Module):
    """Timestep-modulated pre-norm block: self-attention (then cross-attention to the latent if
    ``context_dim``), then an MLP; each residual branch gated by the timestep (adaLN-Zero)."""

    def __init__(self, size: UViTSize, dropout: float, context_dim: int | None, long_skip: bool) -> None:
        super().__init__()
        dim, heads, bias = size.mid_dim, size.mid_num_heads, size.mid_qkv_bias
        self.cross = context_dim is not None
        branches = 3 if self.cross else 2
        self.norm1 = _LayerNorm(dim)
        attention = _SelfAttention(dim, heads, bias, dropout)
        if self.cross:  # the official names differ between the two block kinds
            self.self_attn = attention
            self.cross_attn = _CrossAttention(dim, context_dim, heads, bias, dropout)
            self.query_norm = _LayerNorm(dim)
            self.context_norm = _LayerNorm(context_dim)
        else:
            self.attn = attention
        self.norm2 = _LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * size.mid_mlp_ratio), dropout)
        self.adaLN_modulation = nn.Linear(size.time_dim, 2 * branches * dim)
        self.adaLN_gate = nn.Linear(size.time_dim, branches * dim)
        self.skip_linear = nn.Linear(2 * dim, dim) if long_skip else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, skip: torch.Tensor | None = None,
                context: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        act = F.silu(temb)
        gates = self.adaLN_gate(act)[:, None].chunk(3 if self.cross else 2, dim=-1)
        mods = self.adaLN_modulation(act).chunk(6 if self.cross else 4, dim=-1)
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        if self.cross:
            x = x + gates[0] * self.self_attn(_modulate(self.norm1(x), mods[0], mods[1]))
            query = _modulate(self.query_norm(x), mods[2], mods[3])
            x = x + gates[1] * self.cross_attn(query, self.context_norm(context), bias)
        else:
            x = x + gates[0] * self.attn(_modulate(self.norm1(x), mods[0], mods[1]))
        return x + gates[-1] * self.mlp(_modulate(self.norm2(x), mods[-2], mods[-1]))


class _MidTransformer(nn.Module):
    """The bottleneck: UNet features -> tokens (+ positions, + latent) -> blocks -> UNet features."""

    def __init__(self, size: UViTSize, cond_dim: int, conditioning: str, dropout: float) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ConfigError(f"UViT conditioning must be one of {list(CONDITIONINGS)}, got {conditioning!r}")
        self.concat = conditioning == "concat"
        dim, n, unet_dim = size.mid_dim, size.mid_hw_posemb, size.block_out_channels[-1]
        # A fixed table (a frozen parameter in the official code, stored in its checkpoints); it puts the
        # row coordinate in the first sin/cos pair, our ViT helper the column: hence the transpose.
        self.register_buffer("mid_pos_emb", sincos_pos_emb_2d(n, n, dim).transpose(-1, -2).contiguous())
        self.long_skip = size.mid_use_long_skip
        half = size.mid_layers // 2
        self.mid_block = nn.ModuleList(
            _Block(size, dropout, None if self.concat else cond_dim, self.long_skip and i > half)
            for i in range(size.mid_layers))
        if self.concat:
            self.mid_cond_proj = nn.Linear(cond_dim, dim)
            self.mask_token = nn.Parameter(torch.zeros(dim))
        self.mid_proj_in = nn.Linear(unet_dim, dim)
        self.mid_proj_out = nn.Linear(dim, unet_dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cond: torch.Tensor,
                cond_mask: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.mid_proj_in(x.flatten(2).transpose(1, 2))
        context = bias = None
        if self.concat:
            tokens = tokens + self._concat_condition(cond.to(tokens.dtype), cond_mask, (h, w))
        else:
            context = cond.to(tokens.dtype).flatten(2).transpose(1, 2)
            bias = None if cond_mask is None else self._attention_bias(cond_mask, tokens.dtype)
        # The stored table is resized to the grid: bicubic for concat, nearest for xattn (as trained).
        mode = dict(mode="bicubic", align_corners=False) if self.concat else dict(mode="nearest")
        pos = F.interpolate(self.mid_pos_emb.float(), size=(h, w), **mode)
        tokens = tokens + pos.flatten(2).transpose(1, 2).to(tokens.dtype)
        skips: list[torch.Tensor] = []  # long skips: block i's output feeds block L-1-i
        half = len(self.mid_block) // 2
        for i, block in enumerate(self.mid_block):
            skip = skips.pop() if block.skip_linear is not None else None
            tokens = block(tokens, temb, skip, context, bias)
            if self.long_skip and i < half:
                skips.append(tokens)
        return self.mid_proj_out(tokens).transpose(1, 2).reshape(b, -1, h, w)

    def _concat_condition(self, cond: torch.Tensor, cond_mask: torch.Tensor | None,
                          grid: tuple[int, int]) -> torch.Tensor:
        """The latent resized to the grid and projected; masked positions (True) become the mask token."""
        cond = self.mid_cond_proj(F.interpolate(cond, size=grid, mode="nearest").flatten(2).transpose(1, 2))
        if cond_mask is None:
            return cond
        mask = F.interpolate(cond_mask[:, None].float(), size=grid, mode="nearest").flatten(1) > 0.5
        return torch.where(mask[..., None], self.mask_token.to(cond.dtype), cond)

    @staticmethod
    def _attention_bias(cond_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Additive bias hiding masked latent positions (True). A fully masked latent is attended uniformly, as
        in the official code (its lowest-float fill), rather than producing NaNs."""
        return additive_mask(cond_mask.flatten(1)[:, None, None, :], dtype)


# -- the network ----------------------------------------------------------------------------------
class UViT(nn.Module):
    """``forward(noisy (B, C, H, W), t, latent (B, D, h, w), cond_mask=None) -> prediction (B, C, H, W)``.

    ``cond_mask`` (True = drop that latent position, for classifier-free guidance) is ``(B, H', W')``
    on the transformer grid for ``concat`` and on the latent grid for ``xattn``. ``dropout`` is the
    transformer's (the official ``dec_transformer_dropout``), active in training mode only.
    """

    def __init__(self, image_channels: int, cond_channels: int, size: UViTSize, conditioning: str = "concat",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.size, self.image_channels = size, image_channels
        widths, groups, tdim = size.block_out_channels, size.norm_num_groups, size.time_dim
        self.conv_in = nn.Conv2d(image_channels, widths[0], size.patch_size, stride=size.patch_size)
        self.time_embedding = _TimestepEmbedding(widths[0], tdim)
        last = len(widths) - 1
        self.down_blocks = nn.ModuleList(
            _DownBlock(widths[max(i - 1, 0)], w, size.layers_per_block, tdim, groups, downsample=i < last)
            for i, w in enumerate(widths))
        if size.downsample_before_mid:
            self.downsample_mid = _MidDownsample(widths[-1])
        self.mid_block = _MidTransformer(size, cond_channels, conditioning, dropout)
        if size.downsample_before_mid:
            self.upsample_mid = _Upsample(widths[-1])
        rev = widths[::-1]
        self.up_blocks = nn.ModuleList(
            _UpBlock(rev[max(i - 1, 0)], rev[min(i + 1, last)], w, size.layers_per_block + 1, tdim, groups,
                     upsample=i < last)
            for i, w in enumerate(rev))
        self.conv_norm_out = _GroupNorm(groups, widths[0], eps=1e-5)
        self.conv_out = nn.ConvTranspose2d(widths[0], image_channels, size.patch_size, stride=size.patch_size)
        self._init_weights()

    def _init_weights(self) -> None:
        """For training from scratch: Xavier linears, and every residual branch starting closed (zero adaLN
        gates and ResNet output convs), so the untrained network is a short, well-conditioned path."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            if name.endswith(("adaLN_gate", "conv2")):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int | float, cond: torch.Tensor,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        t = denoiser_timesteps(x, t, self.size.multiple, self.image_channels, "UViT")
        dtype = self.conv_in.weight.dtype
        temb = self.time_embedding(timestep_embedding(t, self.size.block_out_channels[0]).to(dtype))
        h = self.conv_in(x.to(dtype))
        skips = [h]
        for block in self.down_blocks:
            h = block(h, temb, skips)
        if self.size.downsample_before_mid:
            h = self.downsample_mid(h)
        h = self.mid_block(h, temb, cond, cond_mask)
        if self.size.downsample_before_mid:
            h = self.upsample_mid(h)
        for block in self.up_blocks:
            h = block(h, temb, skips)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

