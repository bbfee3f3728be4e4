"""DiVAE: a VQ tokenizer whose decoder is a diffusion model conditioned on the quantized latents.

Why diffusion: a deterministic decoder averages over everything the tokens leave undetermined
and blurs; a denoiser samples one plausible image instead. The encoder and quantizer are the
VQ-VAE's (same config fields and state-dict keys); the decoder is a compact UNet of our own that
sees the noisy image patchified (P x P pixels per position, like the official patched UNet) with
the nearest-upsampled latent concatenated to it. Noise schedules and samplers come from
``diffusers`` (cosine schedule rescaled to zero terminal SNR, DDPM or DDIM with trailing spacing),
so only the network is ours. Decoding is deterministic given a seed.

The official DiVAE decoders (ADM-style UNet, UViT) are different networks: their encoders and
quantizers load here, their decoders do not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiVAEConfig
from .vq import QuantizerOutput
from .vqvae import VQTokenizer

__all__ = ["DiVAE", "CondUNet", "make_scheduler"]


def make_scheduler(config: DiVAEConfig, kind: str | None = None):
    """The diffusers scheduler the config describes (``kind`` overrides ``config.scheduler``)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    kind = kind or config.scheduler
    if kind not in ("ddpm", "ddim"):
        raise ValueError(f"scheduler must be 'ddpm' or 'ddim', got {kind!r}")
    if config.zero_terminal_snr and config.prediction_type == "epsilon":
        raise ValueError("epsilon prediction is undefined at zero terminal SNR; use v_prediction or sample")
    cls = DDPMScheduler if kind == "ddpm" else DDIMScheduler
    return cls(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
               prediction_type=config.prediction_type, rescale_betas_zero_snr=config.zero_terminal_snr,
               timestep_spacing="trailing", clip_sample=False)


def _timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


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
            raise ValueError(f"DiVAE decoder needs image sides divisible by {self.multiple}, got {hh}x{ww}")
        p = self.patch
        h = F.pixel_unshuffle(x, p)
        h = torch.cat([h, F.interpolate(cond.to(h.dtype), size=h.shape[-2:], mode="nearest")], dim=1)
        temb = self.time_mlp(_timestep_embedding(t.expand(b) if t.ndim == 0 else t, self.conv_in.out_channels))
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
            raise ValueError("DiVAE decodes images; use a VQVAE for class maps and vectors")
        if config.dec_type != "unet":
            raise ValueError(f"DiVAE decoder {config.dec_type!r} (an official architecture) is not implemented in open4m; "
                             "load the checkpoint with encoder_only=True to tokenize with it")
        super().__init__(config)
        self.decoder = CondUNet(config.n_channels, config.latent_dim, config.dec_channels,
                                tuple(config.dec_channel_mult), config.dec_patch_size)
        self.noise_scheduler = make_scheduler(config, "ddpm")

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
                      scheduler: str | None = None, image_size: int | None = None, progress: bool = False) -> torch.Tensor:
        """Sample an image for each latent with ``steps`` denoising steps; same seed, same image."""
        if steps < 1 or steps > self.config.num_train_timesteps:
            raise ValueError(f"steps must lie in [1, {self.config.num_train_timesteps}], got {steps}")
        sched = make_scheduler(self.config, scheduler)
        sched.set_timesteps(steps)
        b, _, h, w = latent.shape
        side = image_size or h * self.config.patch_size
        width = image_size or w * self.config.patch_size
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        x = torch.randn((b, self.config.n_channels, side, width), generator=gen).to(latent.device, latent.dtype)
        timesteps = sched.timesteps
        if progress:
            from tqdm.auto import tqdm

            timesteps = tqdm(timesteps, desc="DiVAE decode")
        for t in timesteps:
            out = self.decoder(x, t.to(latent.device), latent)
            x = sched.step(out, t, x, generator=gen).prev_sample
        return x
