"""Transformer building blocks: norms, attention, MLPs and the encoder/decoder blocks.

Parameter names follow the official checkpoints (`attn.qkv`, `cross_attn.kv`, `mlp.fc1/fc2/fc3`,
`norm1`, `query_norm`, `context_norm`, ...) so released weights load without renaming.

Attention always goes through `F.scaled_dot_product_attention`. Masks are *additive* float
tensors holding `finfo.min` where attention is forbidden: a partially masked row then behaves
exactly like the official masked_fill(-max) + softmax, and a fully masked row (a padded slot
with nothing to look at) gets the same uniform average instead of NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..ops import additive_mask, merge_heads, split_heads


class LayerNorm(nn.Module):
    """LayerNorm whose bias is optional; without it a fixed zero buffer stands in.

    The buffer is persistent because the released checkpoints contain it (`*.norm1.bias`).
    """

    def __init__(self, dim: int, eps: float = 1e-6, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        if bias:
            self.bias = nn.Parameter(torch.zeros(dim))
        else:
            self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


SMALL_ROWS = 128  # at most this many rows take the weight-times-transposed-input route on the CPU


class Linear(nn.Linear):
    """nn.Linear that multiplies few rows as W @ xᵀ on the CPU (same parameters, same results up to rounding).

    Why: cached decoding and speculative verification feed 1-128 rows through every weight, a
    regime bound by reading the weights. There MKL's `x @ Wᵀ` runs 1.2-2x slower than the same
    product written as `W @ xᵀ` (2-core AVX2 EPYC, fp32; `python benchmarks/small_linear.py`).
    From about 200 rows on both are compute-bound and equal, so larger inputs and other devices
    keep `F.linear`, and so does a compiled graph (the compiler picks its own kernels, and a row
    count that depends on the data would break the graph).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        if x.device.type != "cpu" or torch.compiler.is_compiling() or rows > SMALL_ROWS or rows == 0:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(rows, self.in_features).t()
        out = torch.mm(self.weight, flat) if self.bias is None else torch.addmm(self.bias[:, None], self.weight, flat)
        return out.t().reshape(*x.shape[:-1], self.out_features)


class Attention(nn.Module):
    """Multi-head attention; self-attention (packed `qkv`) or cross-attention (`q` + packed `kv`).

    The packed projections keep the official row layout: q | k | v (self) and k | v (cross).
    `attend_to_cache` lets the sampler append keys/values incrementally (KV cache).
    """

    def __init__(self, dim: int, num_heads: int, *, cross: bool = False, qkv_bias: bool = False,
                 proj_bias: bool = False, qk_norm: bool = False, norm_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.cross = cross
        head_dim = dim // num_heads
        if cross:
            self.q = Linear(dim, dim, bias=qkv_bias)
            self.kv = Linear(dim, 2 * dim, bias=qkv_bias)
        else:
            self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)
        if qk_norm:
            self.q_norm = LayerNorm(head_dim, bias=norm_bias)
            self.k_norm = LayerNorm(head_dim, bias=norm_bias)
        else:
            self.q_norm = self.k_norm = None

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a cross-attention context (cached once per generation)."""
        k, v = self.kv(context).chunk(2, dim=-1)
        k, v = split_heads(k, self.num_heads), split_heads(v, self.num_heads)
        if self.k_norm is not None:
            k = self.k_norm(k)
        return k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """`mask` is additive, broadcastable to (B, heads, Nq, Nk).

        Cross-attention takes `context`, or precomputed `kv` from `project_kv`. Self-attention
        with a `cache` dict (`{"capacity": n}` to start) appends this call's keys/values to it and
        attends to all of them.
        """
        if self.cross:
            q = split_heads(self.q(x), self.num_heads)
            k, v = kv if kv is not None else self.project_kv(context)
        else:
            q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
            if self.k_norm is not None:
                k = self.k_norm(k)
            if cache is not None:
                k, v = _append_to_cache(cache, k, v)
        if self.q_norm is not None:
            q = self.q_norm(q)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(merge_heads(out))


def _append_to_cache(cache: dict, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append keys/values to a self-attention cache; return everything cached so far.

    The cache starts as `{"capacity": positions}` and becomes one preallocated buffer written in
    place, so decoding n tokens copies each key once instead of re-concatenating the prefix n times.
    """
    t = k.shape[2]
    if "k" not in cache:
        b, h, _, d = k.shape
        cache["k"] = k.new_empty(b, h, cache["capacity"], d)
        cache["v"] = v.new_empty(b, h, cache["capacity"], d)
        cache["used"] = 0
    n = cache["used"] + t
    if n > cache["capacity"]:
        raise ValueError(f"KV cache holds {cache['capacity']} positions; {n} were written")
    cache["k"][:, :, cache["used"]:n] = k
    cache["v"][:, :, cache["used"]:n] = v
    cache["used"] = n
    return cache["k"][:, :, :n], cache["v"][:, :, :n]


def rewind_cache(cache: dict, used: int) -> None:
    """Keep only the first `used` cached positions (speculative decoding drops rejected guesses)."""
    if "used" in cache:
        if not 0 <= used <= cache["used"]:
            raise ValueError(f"cannot rewind a KV cache holding {cache['used']} positions to {used}")
        cache["used"] = used


class Mlp(nn.Module):
    """fc1 → act → fc2, or the gated form fc2(act(fc1 x) * fc3 x) (SwiGLU with SiLU)."""

    def __init__(self, dim: int, hidden: int, act: str = "GELU", gated: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden, bias=bias)
        self.act = getattr(nn, act)()
        self.fc3 = Linear(dim, hidden, bias=bias) if gated else None
        self.fc2 = Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(x))
        if self.fc3 is not None:
            h = h * self.fc3(x)
        return self.fc2(h)


class DropPath(nn.Module):
    """Per-sample stochastic depth (identity at eval and at rate 0)."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class _BlockOptions:
    """Shared constructor arguments of encoder and decoder blocks."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, act: str, gated: bool, qkv_bias: bool,
                 proj_bias: bool, mlp_bias: bool, norm_bias: bool, qk_norm: bool) -> None:
        self.dim, self.num_heads, self.mlp_hidden, self.act, self.gated = dim, num_heads, mlp_hidden, act, gated
        self.qkv_bias, self.proj_bias, self.mlp_bias, self.norm_bias, self.qk_norm = (
            qkv_bias, proj_bias, mlp_bias, norm_bias, qk_norm)

    def norm(self) -> LayerNorm:
        return LayerNorm(self.dim, bias=self.norm_bias)

    def attention(self, cross: bool) -> Attention:
        return Attention(self.dim, self.num_heads, cross=cross, qkv_bias=self.qkv_bias, proj_bias=self.proj_bias,
                         qk_norm=self.qk_norm, norm_bias=self.norm_bias)

    def mlp(self) -> Mlp:
        return Mlp(self.dim, self.mlp_hidden, self.act, self.gated, self.mlp_bias)


class EncoderBlock(nn.Module):
    """Pre-norm self-attention + MLP."""

    def __init__(self, opts: _BlockOptions, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.attn = opts.norm(), opts.attention(cross=False)
        self.norm2, self.mlp = opts.norm(), opts.mlp()
        self.drop_path = DropPath(drop_path)
        self.act_checkpoint = False

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), mask=mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.act_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, mask, use_reentrant=False)
        return self._forward(x, mask)


class DecoderBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to the (own-normed) context, then MLP."""

    def __init__(self, opts: _BlockOptions, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.self_attn = opts.norm(), opts.attention(cross=False)
        self.query_norm, self.context_norm = opts.norm(), opts.norm()
        self.cross_attn = opts.attention(cross=True)
        self.norm2, self.mlp = opts.norm(), opts.mlp()
        self.drop_path = DropPath(drop_path)
        self.act_checkpoint = False

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This block's cross-attention keys/values for a context (reused across decoding steps)."""
        return self.cross_attn.project_kv(self.context_norm(context))

    def _forward(self, y: torch.Tensor, context: torch.Tensor | None, sa_mask: torch.Tensor | None,
                 xa_mask: torch.Tensor | None, kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                 cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        y = y + self.drop_path(self.self_attn(self.norm1(y), mask=sa_mask, cache=cache))
        if kv is None:
            kv = self.context_kv(context)
        y = y + self.drop_path(self.cross_attn(self.query_norm(y), mask=xa_mask, kv=kv))
        return y + self.drop_path(self.mlp(self.norm2(y)))

    def forward(self, y: torch.Tensor, context: torch.Tensor | None, sa_mask: torch.Tensor | None = None,
                xa_mask: torch.Tensor | None = None, kv: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        if self.act_checkpoint and self.training and torch.is_grad_enabled() and cache is None:
            return checkpoint(self._forward, y, context, sa_mask, xa_mask, kv, use_reentrant=False)
        return self._forward(y, context, sa_mask, xa_mask, kv, cache)
