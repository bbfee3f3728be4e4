"""Learning-rate schedule: linear warmup, then cosine decay to `min_lr`, in steps or tokens.

The schedule is a pure function of progress (steps or tokens seen), so resuming needs no
scheduler object: the restored counters give back the exact learning rate.
"""

from __future__ import annotations

import math

from ..errors import ConfigError


def peak_lr(blr: float, global_batch: int, lr: float | None = None) -> float:
    """The official linear scaling rule: `blr` is the rate for a batch of 256 samples."""
    if lr is not None:
        return lr
    return blr * global_batch / 256


def check_schedule(total: float, warmup: float, key: str = "optim.warmup", unit: str = "") -> None:
    """The one rule a schedule obeys (a positive length, the warmup inside it). The trainers apply it at their
    first step; recipes apply it when they are read, so a bad stage fails before hours of rendering, with the
    recipe's own key (`key`) in the message."""
    if total <= 0:
        raise ConfigError(f"schedule length must be positive, got {total}; set train.steps (or train.tokens) > 0")
    if not 0 <= warmup < total:
        run = f"{total} {unit}".rstrip()
        raise ConfigError(f"{key}={warmup} must be >= 0 and shorter than its run of {run}; lower {key} or train "
                          "longer")


def lr_at(progress: float, total: float, peak: float, warmup: float = 0.0, min_lr: float = 0.0) -> float:
    """Learning rate after `progress` units of `total` (both steps or both tokens)."""
    check_schedule(total, warmup)
    if progress < warmup:
        return peak * progress / warmup
    t = min(1.0, (progress - warmup) / (total - warmup))
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
