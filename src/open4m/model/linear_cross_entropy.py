"""Output head + cross-entropy in row chunks, without keeping the (tokens x vocab) logits.

Why: the loss of a 4M output head over a 30k vocabulary needs, per target token, 30k logits in the
head's dtype, their fp32 copy and the fp32 log-softmax that ``F.cross_entropy`` keeps for the
backward pass — 10 bytes x vocab per token, 1.2 GB for 4096 caption tokens. Here the logits of a
slice of rows live only while that slice is reduced to its log-sum-exp; the backward pass computes
them again, slice by slice, and turns them into gradients at once. What is kept is the head's input
and one fp32 number per token. The arithmetic is that of ``F.cross_entropy(head(x).float(), y,
reduction="sum")`` (under autocast too: the products run in the autocast dtype), one extra product
with the head in the backward pass being the price.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["linear_cross_entropy", "CHUNK_ELEMENTS"]

CHUNK_ELEMENTS = 1 << 22  # logits per slice: 16 MB of fp32


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         target: torch.Tensor) -> torch.Tensor:
    """Sum over rows of ``cross_entropy(hidden @ weight.T + bias, target)``; ``hidden`` is (N, D)."""
    dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) else None
    return _LinearCrossEntropy.apply(hidden, weight, bias, target, dtype)


def _rows_per_slice(vocab: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(vocab, 1))


def _logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.linear(h, weight, bias).float()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # noqa: ANN001
                target: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        low = dtype or hidden.dtype
        h, w = hidden.to(low), weight.to(low)
        b = None if bias is None else bias.to(low)
        step = _rows_per_slice(w.shape[0])
        lse = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.shape[0], step):
            rows = slice(start, start + step)
            logits = _logits(h[rows], w, b)
            lse[rows] = torch.logsumexp(logits, dim=-1)
            total += (lse[rows] - logits.gather(1, target[rows, None])[:, 0]).sum()
        ctx.save_for_backward(h, weight, bias, target, lse)
        ctx.dtypes = (hidden.dtype, low)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):  # noqa: ANN001, ANN205
        h, weight, bias, target, lse = ctx.saved_tensors
        hidden_dtype, low = ctx.dtypes
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        w = weight.to(low)
        b = None if bias is None else bias.to(low)
        grad_h = torch.empty(h.shape, dtype=hidden_dtype, device=h.device) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=h.device) if need_b else None
        step = _rows_per_slice(w.shape[0])
        for start in range(0, h.shape[0], step):
            rows = slice(start, start + step)
            probs = _logits(h[rows], w, b).sub_(lse[rows, None]).exp_()
            probs.scatter_add_(1, target[rows, None], probs.new_full((probs.shape[0], 1), -1.0))
            grad_logits = probs.mul_(grad_total)
            low_grad = grad_logits.to(low)
            if need_h:
                grad_h[rows] = low_grad @ w
            if need_w:
                grad_w += (low_grad.t() @ h[rows]).float()
            if need_b:
                grad_b += low_grad.sum(0).float() if low != torch.float32 else grad_logits.sum(0)
        return (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                None if grad_b is None else grad_b.to(bias.dtype), None, None)
