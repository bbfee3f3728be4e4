"""Noise schedules and samplers of the diffusion decoders, as the official DiVAE pipeline runs them.

The samplers are ``diffusers``' DDPM and DDIM schedulers: for the betas (``linear``,
``scaled_linear``, ``squaredcos_cap_v2``), zero-terminal-SNR rescaling, dynamic thresholding,
``clip_sample`` and the three prediction types they compute exactly what the official forks do.
Where they differ we step in:

* ``shifted_cosine:<s>`` (a cosine schedule shifted in log-SNR, with the last ᾱ exactly 0) is not a
  diffusers schedule; its ᾱ table is computed here and given to the scheduler.
* The official DDPM scheduler ignores the requested timestep spacing and always uses ``leading``
  (t = 900, 800, ..., 0 for 10 steps), so it starts from pure noise at a timestep where the model
  expects some signal. Here the spacing is honoured for both samplers (default ``trailing``:
  999, 899, ..., 99); ``spacing="leading"`` reproduces the official DDPM decodes exactly.

The sampling loop draws the initial noise as ``torch.randn((B, C, H, W), generator=g)`` on the CPU
and the DDPM step noise from the same generator, as the official pipeline does, so a seed gives
the official image.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import ConfigError

__all__ = ["make_scheduler", "shifted_cosine_alphas_cumprod", "denoise", "SCHEDULERS", "SPACINGS", "BETA_SCHEDULES"]

SCHEDULERS = ("ddpm", "ddim")
SPACINGS = ("trailing", "leading", "linspace")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "shifted_cosine:<s>")
PREDICTIONS = ("v_prediction", "sample", "epsilon")


def shifted_cosine_alphas_cumprod(num_timesteps: int, shift: float) -> torch.Tensor:
    """ᾱ of a cosine schedule shifted by ``log(shift)`` in log-SNR (Hoogeboom et al. 2023), last ᾱ = 0.

    logSNR(t) = -2·(log tan(πt/2) + log shift) on t in [0, 1], clamped to ±15, ᾱ = sigmoid(logSNR).
    """
    if shift <= 0:
        raise ConfigError(f"shifted_cosine needs a positive shift, got {shift}")
    t = torch.linspace(0, 1, num_timesteps, dtype=torch.float64)
    log_snr = -2 * (torch.tan(math.pi * t / 2).log() + math.log(shift))
    alphas = log_snr.clamp(-15, 15).float().sigmoid()
    alphas[-1] = 0.0
    return alphas


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")


def make_scheduler(*, kind: str, num_train_timesteps: int = 1000, beta_schedule: str = "linear",
                   prediction_type: str = "sample", zero_terminal_snr: bool = True, thresholding: bool = False,
                   clip_sample: bool = False, spacing: str = "trailing"):
    """A diffusers DDPM/DDIM scheduler configured as the official DiVAE builds its own."""
    from diffusers import DDIMScheduler, DDPMScheduler

    _check("scheduler", kind, SCHEDULERS)
    _check("spacing", spacing, SPACINGS)
    _check("prediction_type", prediction_type, PREDICTIONS)
    shifted = beta_schedule.startswith("shifted_cosine:")
    if not shifted:
        _check("beta_schedule", beta_schedule, BETA_SCHEDULES[:3])
    common = dict(num_train_timesteps=num_train_timesteps, prediction_type=prediction_type,
                  thresholding=thresholding, clip_sample=clip_sample, dynamic_thresholding_ratio=0.995,
                  sample_max_value=1.0, timestep_spacing=spacing)
    if shifted:
        sched = (DDPMScheduler if kind == "ddpm" else DDIMScheduler)(**common)
        try:
            shift = float(beta_schedule.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"beta_schedule {beta_schedule!r}: write shifted_cosine:<number>, e.g. "
                             "shifted_cosine:0.5") from None
        alphas = shifted_cosine_alphas_cumprod(num_train_timesteps, shift)
        sched.alphas_cumprod = alphas
        sched.alphas = torch.cat([alphas[:1], alphas[1:] / alphas[:-1].clamp_min(1e-20)])
        sched.betas = 1 - sched.alphas
    else:
        sched = (DDPMScheduler if kind == "ddpm" else DDIMScheduler)(
            beta_schedule=beta_schedule, rescale_betas_zero_snr=zero_terminal_snr, **common)
    terminal = float(sched.alphas_cumprod[-1]) == 0.0
    if prediction_type == "epsilon" and terminal and spacing != "leading":
        raise ConfigError("epsilon prediction is undefined at zero terminal SNR (the first step divides by ᾱ = 0); "
                         "use spacing='leading', or a v_prediction / sample tokenizer")
    return sched


@torch.no_grad()
def denoise(network: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], cond: torch.Tensor,
            scheduler, steps: int, shape: tuple[int, int, int, int], *, generator: torch.Generator | None = None,
            progress: bool = False) -> torch.Tensor:
    """Run ``steps`` sampler steps from pure noise: ``network(x_t, t, cond)`` predicts, the scheduler steps.

    The noise comes from ``generator`` on the CPU (then moves to ``cond``'s device), so the same
    seed gives the same image on any device. Steps are taken in fp32 whatever the network's dtype.
    """
    train_steps = scheduler.config.num_train_timesteps
    if not 1 <= steps <= train_steps:
        raise ConfigError(f"steps must lie in [1, {train_steps}], got {steps}")
    scheduler.set_timesteps(steps)
    x = torch.randn(shape, generator=generator).to(cond.device)
    timesteps = scheduler.timesteps
    if progress:
        from tqdm.auto import tqdm

        timesteps = tqdm(timesteps, desc="diffusion decode", leave=False)
    dtype = next((p.dtype for p in getattr(network, "parameters", lambda: iter(()))()), torch.float32)
    for t in timesteps:
        out = network(x.to(dtype), t.to(cond.device), cond.to(dtype)).float()
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x
