"""Small tensor operations that several layers share (attention head layout, additive masks).

They sit at the bottom of the package so the model and the tokenizers use one copy without
importing each other.
"""

from __future__ import annotations

import torch

__all__ = ["split_heads", "merge_heads", "additive_mask"]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, D) -> (B, heads, N, D / heads), the layout ``F.scaled_dot_product_attention`` takes."""
    b, n, d = x.shape
    return x.reshape(b, n, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, Dh) -> (B, N, heads · Dh)."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def additive_mask(blocked: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a boolean "blocked" mask into the additive float mask SDPA takes (the dtype's lowest value,
    so a fully blocked row attends uniformly instead of giving NaN)."""
    return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill_(blocked, torch.finfo(dtype).min)
