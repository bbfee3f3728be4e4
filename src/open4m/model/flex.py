"""FlexAttention for FourM's masks: the `flex` attention backend (`FourM(..., attention="flex")`).

Why: FourM's masks are mostly empty or block-structured — padded encoder keys, the decoder's
per-modality ("sep") and compressed-causal self-attention, padded cross-attention keys. SDPA takes
them as dense additive float tensors, which rules out its flash kernels and touches every
(query, key) pair. FlexAttention takes a `BlockMask` instead, skips the fully blocked (128 x 128)
tiles and never materialises the mask per head; with `torch.compile` it runs as one fused kernel.

A `FlexMask` is built from the same boolean "blocked" tensors the `sdpa` backend turns into
additive masks (`open4m.ops.additive_mask`), so both backends compute the same function. The one
place they would differ is a query row with every key blocked (the lone padded token of an
unconditional generation, a batch row with no visible input): SDPA with a `finfo.min` mask gives
the uniform average of all values there, FlexAttention gives zeros. Such rows are kept whole by
the mask and their scores replaced by zeros, which gives SDPA's uniform average exactly.

Gradients through such a row are those of that uniform average (values get 1/keys of the output
gradient, queries and keys none), as in the official masked_fill + softmax. SDPA's own backward
there depends on the kernel it picks: its math kernel also gives queries and keys the gradient of
the scores the mask rounded away, its fused CPU kernel weights every key by 1 instead of 1/keys.
In the masks open4m builds, rows that reach the loss always see a key (an image target group is
counted at its first position, every sequence target counts itself), so the two backends agree
on training gradients except for a sample with no visible input at all.

Limits (PyTorch 2.13): FlexAttention has no backward pass on the CPU, so `flex` trains on CUDA
only (the CPU runs it for inference, unfused, for checking), and Inductor's CPU template cannot
lower masks that read tensors computed inside a compiled graph (TorchDynamo traces them without a
break; CUDA kernels come from the Triton template). Cached autoregressive decoding keeps SDPA: its
few-query steps take additive masks, which `Attention` always routes to SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from ..errors import ConfigError

__all__ = ["BACKENDS", "FlexMask", "check_backend", "check_training_device", "blocked_keys"]

BACKENDS = ("sdpa", "flex")
_compiled_flex: Callable | None = None


def check_backend(name: str) -> str:
    """The backend name, or a ConfigError naming the valid ones."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown attention backend {name!r}; use one of {', '.join(BACKENDS)} "
                          "(sdpa: every device; flex: FlexAttention, for CUDA with torch.compile)")
    return name


def check_training_device(backend: str, device: torch.device) -> None:
    """Refuse to train with `flex` where PyTorch's FlexAttention has no backward pass (CPU, MPS)."""
    if backend == "flex" and device.type in ("cpu", "mps"):
        raise ConfigError(f"attention=flex cannot train on {device.type}: PyTorch's FlexAttention has no backward "
                          f"pass there; use attention=sdpa on {device.type} (flex is for CUDA)")


def blocked_keys(additive: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, N) additive key mask -> (B, 1, N) bool "blocked" (it holds 0 or the dtype's lowest value)."""
    return additive[:, 0] < 0


@dataclass
class FlexMask:
    """A `BlockMask` plus the score fix for fully blocked rows; `Attention` runs FlexAttention on it.

    Build it once per forward (`from_blocked`) and share it by every layer: the block structure is
    computed once, not per layer.
    """

    block_mask: BlockMask
    fully_blocked: torch.Tensor  # (B, Nq) bool: rows whose every key is blocked

    @classmethod
    def from_blocked(cls, blocked: torch.Tensor, q_len: int | None = None) -> "FlexMask":
        """From a bool tensor, True = the query may not attend to the key.

        `blocked` is (B, Nq, Nk), or (B, 1, Nk) for key padding shared by all `q_len` queries.
        """
        b, rows, kv_len = blocked.shape
        q_len = rows if q_len is None else q_len
        blocked = blocked.expand(b, q_len, kv_len)
        fully = blocked.all(dim=-1)

        def allowed(batch, head, q, kv):  # noqa: ANN001, ANN202 -- FlexAttention's mask_mod signature
            return ~blocked[batch, q, kv] | fully[batch, q]

        return cls(create_block_mask(allowed, b, None, q_len, kv_len, device=blocked.device), fully)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention over (B, heads, N, Dh) tensors; what SDPA gives with the equivalent additive mask."""
        fully = self.fully_blocked

        def score(s, batch, head, q_idx, kv_idx):  # noqa: ANN001, ANN202 -- FlexAttention's score_mod signature
            return torch.where(fully[batch, q_idx], 0.0, s)

        run = _flex() if q.is_cuda else flex_attention
        return run(q, k, v, score_mod=score, block_mask=self.block_mask)


def _flex() -> Callable:
    """FlexAttention on CUDA: compiled once into the fused kernel when the caller did not compile the model.

    Inside a compiled model the plain function is traced into the model's graph instead.
    """
    global _compiled_flex
    if torch.compiler.is_compiling():
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention)
    return _compiled_flex
