"""AdamW with decoupled weight decay, minus the parameters that should never decay.

Norms, biases, embedding tables and the positional/modality/mask tokens are excluded from weight
decay (the model lists them in `no_weight_decay()`). The fused kernel is used where the running
torch has it for the parameters' device — on CPU too since torch 2.4 — because at small model
widths the optimizer update over the large embedding tables dominates a training step.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .adamw import AdamW, fused_available


def parameter_groups(model: nn.Module, weight_decay: float, skip: Iterable[str] | None = None) -> list[dict]:
    """Two AdamW groups: decayed matrices and everything in the model's no-decay set."""
    if skip is None:
        skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    skip = set(skip)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name in skip or param.dim() < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


STATE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build_adamw(groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                fused: bool | None = None, state_dtype: str = "fp32") -> AdamW:
    """AdamW over parameter ``groups`` (see :func:`parameter_groups`); ``fused=None`` picks the fused kernel
    where the parameters' device supports it; ``state_dtype="bf16"`` stores the moments in bf16 (see
    :mod:`open4m.train.adamw`). A group's ``lr_scale`` is kept for the engine's schedule."""
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ConfigError("no trainable parameters: every parameter is frozen; drop some model.freeze prefixes "
                          "(or set model.lora_rank to train adapters)")
    if state_dtype not in STATE_DTYPES:
        raise ConfigError(f"optim.state_dtype={state_dtype!r}: use {' or '.join(STATE_DTYPES)}")
    if fused is None:
        fused = fused_available(params[0].device)
    return AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused, state_dtype=STATE_DTYPES[state_dtype])


class SparseGradientDensifier:
    """Scatters row-sparse gradients into persistent dense buffers before the optimizer step.

    Fused AdamW and gradient clipping need dense gradients; allocating a fresh zeroed
    (vocab x dim) tensor per table per step costs page faults, while re-zeroing a warm buffer
    costs a memset. The buffers live as long as this object (one per trained model).
    """

    def __init__(self) -> None:
        self._buffers: dict[int, torch.Tensor] = {}

    def __call__(self, model: nn.Module) -> None:
        for param in model.parameters():
            grad = param.grad
            if grad is None or not grad.is_sparse:
                continue
            buf = self._buffers.get(id(param))
            if buf is None or buf.shape != param.shape:
                buf = self._buffers[id(param)] = torch.zeros_like(param)
            else:
                buf.zero_()
            buf.index_add_(0, grad._indices()[0], grad._values())
            param.grad = buf
