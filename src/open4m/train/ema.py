"""Exponential moving average of the weights, kept in float32 beside the trained model."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError


class EMA:
    """``shadow = decay * shadow + (1 - decay) * weights`` for every parameter after each optimizer step.

    Buffers are copied, not averaged: they are running statistics already (a VQ codebook's EMA
    embeddings and usage counts) or constants (sincos tables), and averaging them twice would
    blur the codebook the averaged weights are meant to decode with. The shadow holds the whole
    state dict, so the averaged model is complete.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), got {decay}; set train.ema_decay to e.g. 0.9999 "
                              "(or leave it unset for no EMA)")
        self.decay = decay
        self.parameters = {name for name, _ in model.named_parameters(remove_duplicate=False)}  # tied names too
        self.shadow = {k: v.detach().float().clone() if v.is_floating_point() else v.detach().clone()
                       for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if k in self.parameters and s.is_floating_point():
                s.lerp_(v.detach().float(), 1.0 - self.decay)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise CheckpointError(f"EMA state lacks {len(missing)} entries, e.g. {sorted(missing)[:3]}; it was saved for "
                                  "another model: resume with the recipe that wrote the checkpoint")
        for k, v in self.shadow.items():
            v.copy_(state[k])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (e.g. a copy used for export or evaluation)."""
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})
