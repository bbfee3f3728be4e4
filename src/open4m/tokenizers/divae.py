"""DiVAE: a VQ tokenizer whose decoder is a diffusion model conditioned on the quantized latents.

Why diffusion: a deterministic decoder averages over everything the tokens leave undetermined
and blurs; a denoiser samples one plausible image instead. The encoder and quantizer are the
VQ-VAE's (same config fields and state-dict keys). Three decoder families share the interface
``decoder(noisy, t, latent)``, all seeing the noisy image patchified:

* ``unet_patched`` (and any ``unet_*`` name): the official patched ADM UNet of the released
  tokenizers (:mod:`open4m.tokenizers.unet`), sized by explicit fields, preset name or checkpoint;
* ``uvit_*``: the official UViT (:mod:`open4m.tokenizers.uvit`), a conv UNet around a transformer
  that takes the latent on its token grid (``conditioning``: added, or by cross-attention); no
  checkpoint of it was released;
* ``unet``: open4m's compact UNet (:class:`CondUNet`), what the shipped world tokenizers use.

Noise schedules and samplers are ``diffusers``' (see :mod:`open4m.tokenizers.diffusion` for where
the official forks differ and what we do there). Decoding is deterministic given a seed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from .config import DiVAEConfig
from .diffusion import denoise, make_scheduler
from .unet import PatchedUNet, UNetSize, infer_unet_size, timestep_embedding, unet_preset, with_overrides
from .uvit import UViT, resolve_uvit_size
from .vq import QuantizerOutput
from .vqvae import VQTokenizer

__all__ = ["DiVAE", "CondUNet", "decoder_family", "official_unet_size"]

_COMPACT = "unet"


def decoder_family(config: DiVAEConfig, state: Mapping[str, torch.Tensor] | None = None) -> str:
    """'compact', 'patched_unet' or 'uvit', from ``dec_type`` (or, for a name we do not know, the checkpoint's keys)."""
    name = config.dec_type
    if name == _COMPACT:
        return "compact"
    if name.startswith("unet_"):
        return "patched_unet"
    if name.startswith("uvit_"):
        return "uvit"
    if state is not None:
        if "decoder.input_blocks.0.0.weight" in state:
            return "patched_unet"
        if "decoder.mid_block.mid_proj_in.weight" in state:
            return "uvit"
        if "decoder.conv_in.weight" in state:
            return "compact"
    raise ConfigError(f"unknown DiVAE dec_type {name!r}: use 'unet' (open4m's compact UNet), 'unet_patched' "
                     "(the official patched UNet; any 'unet_*' name with explicit dec_* sizes) or a 'uvit_*' "
                     "preset (the official UViT, e.g. 'uvit_b_p4_f16')")


def official_unet_size(config: DiVAEConfig, state: Mapping[str, torch.Tensor] | None = None) -> UNetSize:
    """The patched UNet's size: explicit ``dec_*`` fields over the preset name over the checkpoint's shapes."""
    c = config
    explicit = dict(model_channels=c.dec_channels, num_res_blocks=c.dec_num_res_blocks,
                    channel_mult=None if c.dec_channel_mult is None else tuple(c.dec_channel_mult),
                    attention_resolutions=None if c.dec_attention_resolutions is None else tuple(c.dec_attention_resolutions),
                    patch_size=c.dec_patch_size, num_heads=c.dec_num_heads)
    base = unet_preset(c.dec_type)
    if base is None and state is not None:
        base = infer_unet_size(state, c.n_channels, c.latent_dim, num_heads=c.dec_num_heads or 1)
    if base is None:
        required = {"model_channels": "dec_channels", "num_res_blocks": "dec_num_res_blocks",
                    "channel_mult": "dec_channel_mult", "attention_resolutions": "dec_attention_resolutions"}
        missing = [field for key, field in required.items() if explicit[key] is None]
        if missing:
            raise ConfigError(f"dec_type {c.dec_type!r} is not a known preset ({', '.join(_presets())}) and there is no "
                             f"checkpoint to read its size from: set {', '.join(missing)}")
        return UNetSize(**{k: v for k, v in explicit.items() if v is not None})
    return with_overrides(base, **explicit)


def _presets() -> list[str]:
    from .unet import UNET_PRESETS

    return sorted(UNET_PRESETS)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, ch // 4) if ch >= 4 else 1, ch)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(temb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class _SelfAttention(nn.Module):
    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm, self.qkv, self.proj = _norm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class CondUNet(nn.Module):
    """Patchified noisy image + upsampled latent -> prediction, one resolution level per channel_mult entry."""

    def __init__(self, image_channels: int, cond_channels: int, channels: int = 64,
                 channel_mult: tuple[int, ...] = (1, 2, 2), patch_size: int = 4) -> None:
        super().__init__()
        self.patch, self.image_channels = patch_size, image_channels
        io = image_channels * patch_size * patch_size
        tdim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(io + cond_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mult]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        cin = channels
        for i, w in enumerate(widths):
            self.down.append(_ResBlock(cin, w, tdim))
            self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1) if i < len(widths) - 1 else nn.Identity())
            cin = w
        self.mid1, self.mid_attn, self.mid2 = _ResBlock(cin, cin, tdim), _SelfAttention(cin), _ResBlock(cin, cin, tdim)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(_ResBlock(cin + w, w, tdim))
            cin = w
        self.norm_out, self.conv_out = _norm(cin), nn.Conv2d(cin, io, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.multiple = patch_size * 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        if hh % self.multiple or ww % self.multiple:
            raise DataError(f"DiVAE decoder needs image sides divisible by {self.multiple}, got {hh}x{ww}")
        p = self.patch
        h = F.pixel_unshuffle(x, p)
        h = torch.cat([h, F.interpolate(cond.to(h.dtype), size=h.shape[-2:], mode="nearest")], dim=1)
        temb = self.time_mlp(timestep_embedding(t.expand(b) if t.ndim == 0 else t, self.conv_in.out_channels))
        h = self.conv_in(h)
        skips = []
        for block, down in zip(self.down, self.downsample):
            h = block(h, temb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), temb)
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), p)


class DiVAE(VQTokenizer):
    """VQ encoder + diffusion decoder; ``decode(tokens, steps=25, seed=0)``."""

    config_class = DiVAEConfig

    def __init__(self, config: DiVAEConfig) -> None:
        if config.n_labels or config.is_mlp:
            raise ConfigError("DiVAE decodes images; use a VQVAE for class maps and vectors")
        family = decoder_family(config)
        super().__init__(config)
        c = config
        if family == "compact":
            self.decoder: nn.Module = CondUNet(c.n_channels, c.latent_dim, c.dec_channels or 64,
                                               tuple(c.dec_channel_mult or (1, 2, 2)), c.dec_patch_size or 4)
        elif family == "uvit":
            size = resolve_uvit_size(c.dec_type, channels=c.dec_channels, channel_mult=c.dec_channel_mult,
                                     patch_size=c.dec_patch_size, layers_per_block=c.dec_num_res_blocks,
                                     dim=c.dec_dim, depth=c.dec_depth, heads=c.dec_heads)
            self.decoder = UViT(c.n_channels, c.latent_dim, size, c.conditioning, c.dec_transformer_dropout)
        else:
            self.decoder = PatchedUNet(c.n_channels, c.latent_dim, official_unet_size(c))
        self.noise_scheduler = self.scheduler("ddpm")

    @classmethod
    def complete_config(cls, config: DiVAEConfig, state: Mapping[str, torch.Tensor]) -> DiVAEConfig:
        """``config`` with the decoder sizes a checkpoint implies written in (for names we have no preset of)."""
        family = decoder_family(config, state)
        if family == "compact":
            return config if config.dec_type == _COMPACT else replace(config, dec_type=_COMPACT)
        if family == "uvit" or unet_preset(config.dec_type) is not None:
            return config
        size = official_unet_size(config, state)
        return replace(config, dec_channels=size.model_channels, dec_num_res_blocks=size.num_res_blocks,
                       dec_channel_mult=size.channel_mult, dec_attention_resolutions=size.attention_resolutions,
                       dec_patch_size=size.patch_size, dec_num_heads=size.num_heads)

    def scheduler(self, kind: str | None = None, spacing: str = "trailing"):
        """The diffusers scheduler of this tokenizer's noise schedule (``kind``: 'ddpm' or 'ddim', default the config's)."""
        c = self.config
        return make_scheduler(kind=kind or c.scheduler, num_train_timesteps=c.num_train_timesteps,
                              beta_schedule=c.beta_schedule, prediction_type=c.prediction_type,
                              zero_terminal_snr=c.zero_terminal_snr, thresholding=c.thresholding,
                              clip_sample=c.clip_sample, spacing=spacing)

    def forward(self, x: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, QuantizerOutput]:
        """The training forward is :meth:`training_loss`: going through ``__call__`` lets DDP synchronise
        the gradients and FSDP gather the parameters."""
        return self.training_loss(x, generator)

    def training_loss(self, x: Any, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, QuantizerOutput]:
        """Denoising loss at a random timestep (target: v, x0 or noise per ``prediction_type``).

        Returns (diffusion loss, the model's x0 estimate for monitoring, quantizer output).
        """
        clean = self.prepare_input(x)
        q = self.quantize(self.quant_proj(self.encoder(clean)))
        b = clean.shape[0]
        sched = self.noise_scheduler
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=generator).to(clean.device)
        noise = torch.randn(clean.shape, generator=generator).to(clean.device, clean.dtype)
        noisy = sched.add_noise(clean, noise, t)
        out = self.decoder(noisy, t, q.quantized)
        kind = self.config.prediction_type
        target = {"v_prediction": lambda: sched.get_velocity(clean, noise, t), "sample": lambda: clean,
                  "epsilon": lambda: noise}[kind]()
        alpha = sched.alphas_cumprod.to(clean.device)[t].view(-1, 1, 1, 1)
        x0 = {"v_prediction": lambda: alpha.sqrt() * noisy - (1 - alpha).sqrt() * out, "sample": lambda: out,
              "epsilon": lambda: (noisy - (1 - alpha).sqrt() * out) / alpha.sqrt().clamp_min(1e-4)}[kind]()
        return F.mse_loss(out, target), x0, q

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor, *, steps: int = 25, seed: int | None = 0,
                      generator: torch.Generator | None = None, scheduler: str | None = None,
                      spacing: str = "trailing", image_size: int | tuple[int, int] | None = None,
                      progress: bool = False) -> torch.Tensor:
        """Sample an image for each latent with ``steps`` denoising steps; same seed, same image.

        ``scheduler`` is 'ddim' (deterministic, the fast path) or 'ddpm' (default: the config's);
        ``spacing`` places the steps ('trailing', 'leading' as the official DDPM, 'linspace');
        ``generator`` (a CPU ``torch.Generator``) replaces ``seed``. The output size defaults to the
        token grid times the encoder's patch size.
        """
        b, _, h, w = latent.shape
        if image_size is None:
            size = (h * self.config.patch_size, w * self.config.patch_size)
        else:
            size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        sched = self.scheduler(scheduler, spacing)
        return denoise(self.decoder, latent, sched, steps, (b, self.config.n_channels, *size),
                       generator=generator, progress=progress)
