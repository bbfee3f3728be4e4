"""Bottleneck MLPs: the encoder/decoder of the vector tokenizers (global DINOv2/ImageBind, poses).

The official naming ``BottleneckMLP/B_<blocks>-Wi_<width>[-Ex_<expansion>]`` encodes the size, so a
checkpoint's ``enc_type`` string alone rebuilds the network. Vectors travel as ``(B, C, 1, 1)`` maps
(the MLP runs point-wise), which lets the vector tokenizers share the VQ-VAE code path with images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["MLPSize", "parse_mlp_name", "BottleneckMLP"]

_NAME = re.compile(r"^BottleneckMLP/B_(\d+)-Wi_(\d+)(?:-Ex_(\d+))?$")


@dataclass(frozen=True)
class MLPSize:
    blocks: int
    width: int
    expansion: int = 4

    @property
    def name(self) -> str:
        tail = f"-Ex_{self.expansion}" if self.expansion != 4 else ""
        return f"BottleneckMLP/B_{self.blocks}-Wi_{self.width}{tail}"


def parse_mlp_name(name: str) -> MLPSize:
    """``"BottleneckMLP/B_6-Wi_1024"`` -> ``MLPSize(6, 1024, 4)``, with a clear error otherwise."""
    match = _NAME.match(name)
    if not match:
        raise ConfigError(
            f"bad MLP type {name!r}: expected 'BottleneckMLP/B_<blocks>-Wi_<width>' (optionally '-Ex_<expansion>'), "
            "e.g. 'BottleneckMLP/B_6-Wi_1024'"
        )
    blocks, width, expansion = match.groups()
    return MLPSize(int(blocks), int(width), int(expansion or 4))


class _BottleneckBlock(nn.Module):
    def __init__(self, thin: int, wide: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(thin, wide), nn.GELU(), nn.Linear(wide, thin))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class BottleneckMLP(nn.Module):
    """``linear_in`` -> residual pre-LN bottleneck blocks -> ``linear_out``, point-wise on ``(B, C, h, w)``."""

    def __init__(self, size: MLPSize, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.size, self.dim_in, self.dim_out = size, dim_in, dim_out
        self.linear_in = nn.Linear(dim_in, size.width)
        self.blocks = nn.ModuleList(_BottleneckBlock(size.width, size.width * size.expansion) for _ in range(size.blocks))
        self.layernorms = nn.ModuleList(nn.LayerNorm(size.width) for _ in range(size.blocks))
        self.linear_out = nn.Linear(size.width, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.dim_in:
            raise ValueError(f"MLP expects input (B, {self.dim_in}, h, w), got {tuple(x.shape)}")
        b, _, h, w = x.shape
        z = self.linear_in(x.flatten(2).transpose(1, 2))
        for block, norm in zip(self.blocks, self.layernorms):
            z = z + block(norm(z))
        return self.linear_out(z).transpose(1, 2).reshape(b, self.dim_out, h, w)
