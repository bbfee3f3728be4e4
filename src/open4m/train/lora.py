"""LoRA fine-tuning: low-rank updates on the transformer blocks' linear layers, merged on export.

Each adapted weight becomes `W + (alpha / rank) * B @ A` through a torch parametrization, so the
module tree and the forward code stay the model's own; `W` is frozen, `A` starts random and `B` at
zero (the adapted model starts as the pretrained one). `merge_lora` folds the update into `W`
and removes the parametrizations, leaving a plain FourM in the release layout.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError

#: Linear layers of FourM's blocks (self/cross attention and MLP).
DEFAULT_TARGETS = ("qkv", "q", "kv", "proj", "fc1", "fc2", "fc3")


class _LowRankUpdate(nn.Module):
    def __init__(self, out_features: int, in_features: int, rank: int, scale: float) -> None:
        super().__init__()
        self.lora_a = nn.Parameter(torch.empty(rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = scale

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.lora_b @ self.lora_a).to(weight.dtype)


def check_lora_options(rank: int | None, alpha: float | None) -> None:
    """Refuse LoRA settings that would train something other than what they say, when a recipe is read.

    `lora_alpha` without `lora_rank` added no adapters and trained as if it were not there; `lora_alpha: 0`
    scaled every update to nothing (the run trained only what LoRA leaves unfrozen) and a negative one flips it.
    """
    if rank is not None and rank < 1:
        raise ConfigError(f"model.lora_rank must be >= 1, got {rank}; set a rank such as 8 "
                          "(or leave it unset for no LoRA)")
    if alpha is not None and rank is None:
        raise ConfigError(f"model.lora_alpha={alpha} is set but model.lora_rank is not, so no LoRA would be added; "
                          "set model.lora_rank (e.g. 8) or drop model.lora_alpha")
    if alpha is not None and alpha <= 0:
        raise ConfigError(f"model.lora_alpha must be > 0 (updates are scaled by alpha / rank), got {alpha}; "
                          "leave it unset for alpha = rank")


def add_lora(blocks: Iterable[nn.Module], rank: int, alpha: float | None = None,
             targets: Sequence[str] = DEFAULT_TARGETS) -> int:
    """Adapt every linear layer inside `blocks` (e.g. `[model.encoder, model.decoder]`) named in `targets`.

    Takes the block stacks rather than a model so that any trunk (a FourM, a FourMEncoder) can be
    adapted; returns how many layers were.
    """
    check_lora_options(rank, alpha)
    scale = (alpha if alpha is not None else rank) / rank
    count = 0
    for stack in blocks:
        for name, module in stack.named_modules():
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
                module.weight.requires_grad_(False)
                parametrize.register_parametrization(
                    module, "weight", _LowRankUpdate(module.out_features, module.in_features, rank, scale))
                count += 1
    if not count:
        raise ConfigError(f"model.lora_targets {list(targets)} name no linear layer; use some of {list(DEFAULT_TARGETS)}")
    return count


def is_lora_parameter(name: str) -> bool:
    return name.endswith((".lora_a", ".lora_b"))


@torch.no_grad()
def merge_lora(model: nn.Module) -> None:
    """Fold the low-rank updates into the weights and drop the parametrizations (in place)."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
