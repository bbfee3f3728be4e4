"""Transformer building blocks: norms, attention, MLPs and the encoder/decoder blocks.

Parameter names follow the official checkpoints (`attn.qkv`, `cross_attn.kv`, `mlp.fc1/fc2/fc3`,
`norm1`, `query_norm`, `context_norm`, ...) so released weights load without renaming.

Attention goes through `F.scaled_dot_product_attention`. Masks are *additive* float
tensors holding `finfo.min` where attention is forbidden: a partially masked row then behaves
exactly like the official masked_fill(-max) + softmax, and a fully masked row (a padded slot
with nothing to look at) gets the same uniform average instead of NaN. A `FlexMask` instead of an
additive mask runs FlexAttention (the `flex` backend, `open4m.model.flex`), with the same results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..ops import additive_mask, merge_heads, split_heads
from .flex import FlexMask


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
        if (torch.is_autocast_enabled(x.device.type) and torch.is_grad_enabled() and self.weight.requires_grad
                and not torch.compiler.is_compiling()):
            return _AutocastLinear.apply(x, self.weight, self.bias, torch.get_autocast_dtype(x.device.type))
        rows = x.numel() // self.in_features
        if x.device.type != "cpu" or torch.compiler.is_compiling() or rows > SMALL_ROWS or rows == 0:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(rows, self.in_features).t()
        out = torch.mm(self.weight, flat) if self.bias is None else torch.addmm(self.bias[:, None], self.weight, flat)
        return out.t().reshape(*x.shape[:-1], self.out_features)


class _AutocastLinear(torch.autograd.Function):
    """A linear layer under autocast that keeps no low-precision copy of its weight for the backward pass.

    Why: autocast casts each fp32 weight to bf16 and the backward pass holds that copy until it is
    used — half the model's size in copies (0.7 GB for base 4M-7), alive at the peak of a step. Here
    the backward pass casts the weight again instead (one cheap pass over it); the results are those
    of autocast's linear.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # noqa: ANN001
                dtype: torch.dtype) -> torch.Tensor:
        low_x = x.to(dtype)
        ctx.save_for_backward(low_x, weight)
        ctx.dtypes = (x.dtype, bias is not None)
        return F.linear(low_x, weight.to(dtype), None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN001, ANN205
        low_x, weight = ctx.saved_tensors
        x_dtype, has_bias = ctx.dtypes
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x, grad_w, grad_b = _linear_grads(grad_out, low_x, weight, need_x, need_w, has_bias and need_b)
        return None if grad_x is None else grad_x.to(x_dtype), grad_w, grad_b, None


def _linear_grads(grad_out: torch.Tensor, low_x: torch.Tensor, weight: torch.Tensor, need_x: bool, need_w: bool,
                  need_b: bool) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The backward pass of ``F.linear(low_x, weight.to(low))``, the weight cast again here: the input's
    gradient in ``grad_out``'s dtype, the weight's and the bias's in the weight's (as autocast gives them)."""
    rows = grad_out.reshape(-1, grad_out.shape[-1])
    grad_x = grad_out @ weight.to(grad_out.dtype) if need_x else None
    grad_w = (rows.t() @ low_x.reshape(-1, low_x.shape[-1])).to(weight.dtype) if need_w else None
    grad_b = rows.sum(0).to(weight.dtype) if need_b else None
    return grad_x, grad_w, grad_b


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
        """`mask` is additive, broadcastable to (B, heads, Nq, Nk), or a `FlexMask` (FlexAttention).

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
        if isinstance(mask, FlexMask):
            return self.proj(merge_heads(mask.attend(q, k, v)))
        return self.proj(attend(q, k, v, mask))


SHORT_ATTENTION = 256 * 256  # query x key positions up to which CPU training recomputes attention in the backward


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with the heads merged, (B, N, heads · Dh); for short sequences in
    CPU training with the backward pass of :class:`_ShortAttention`."""
    if (q.device.type == "cpu" and torch.is_grad_enabled() and q.shape[-2] * k.shape[-2] <= SHORT_ATTENTION
            and any(t.requires_grad for t in (q, k, v)) and not torch.compiler.is_compiling()):
        return _ShortAttention.apply(q, k, v, mask)
    return merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


class _ShortAttention(torch.autograd.Function):
    """SDPA whose backward pass recomputes the attention probabilities with three batched products.

    Returns the output with the heads merged (see :func:`attend`).

    Why: on the CPU, PyTorch's fused (flash) attention has a fast forward and a slow backward — at
    4M's 128-token sequences its backward takes 15x its forward, 18 % of a base training step. For
    short sequences the probabilities of one layer (B x heads x Nq x Nk) are small, so the backward
    here rebuilds them from q, k and the mask, uses them and drops them: nothing beyond SDPA's own
    saved tensors is kept, and the backward runs about 2x faster. Fully masked rows get SDPA's
    uniform average in the forward and its exact gradient here.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,  # noqa: ANN001
                mask: torch.Tensor | None) -> torch.Tensor:
        # Returned with the heads merged, the layout the output projection keeps for its own backward
        # pass: one tensor serves both instead of two copies.
        merged = merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        ctx.save_for_backward(q, k, v, merged, mask)
        return merged

    @staticmethod
    def backward(ctx, grad_merged: torch.Tensor):  # noqa: ANN001, ANN205
        q, k, v, merged, mask = ctx.saved_tensors
        out, grad_out = (split_heads(t, q.shape[1]) for t in (merged, grad_merged))
        scale = q.shape[-1] ** -0.5
        wide = torch.promote_types(q.dtype, torch.float32)  # softmax and its backward in fp32 (or fp64)
        scores = (q @ k.transpose(-2, -1)).to(wide).mul_(scale)
        if mask is not None:  # -inf (a blocked finfo.min rounded) would turn a fully masked row into NaN
            scores = scores + mask.to(wide).clamp(min=torch.finfo(wide).min)
        probs = torch.softmax(scores, dim=-1)
        grad_out = grad_out.to(q.dtype)
        grad_v = probs.to(v.dtype).transpose(-2, -1) @ grad_out
        # d(scores) = P * (dP - rowsum(dO * O)): the softmax backward, fused over the batch
        grad_probs = (grad_out @ v.transpose(-2, -1)).to(wide)
        rowsum = (grad_out.to(wide) * out.to(wide)).sum(dim=-1, keepdim=True)
        grad_scores = probs.mul_(grad_probs.sub_(rowsum)).mul_(scale)
        if mask is not None:  # blocked scores are constants (official: masked_fill), even in a fully masked row
            grad_scores = grad_scores.masked_fill_(mask.to(wide) < torch.finfo(mask.dtype).min / 2, 0.0)
        grad_scores = grad_scores.to(q.dtype)
        grad_q = grad_scores @ k
        grad_k = grad_scores.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v, None


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
        a = self.fc1(x)
        gate = self.fc3(x) if self.fc3 is not None else None
        if torch.is_grad_enabled() and isinstance(self.fc2, Linear) and not torch.compiler.is_compiling():
            dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
            return _ActivatedDownProjection.apply(a, gate, self.fc2.weight, self.fc2.bias, self.act, dtype)
        h = self.act(a)
        return self.fc2(h if gate is None else h * gate)


class _ActivatedDownProjection(torch.autograd.Function):
    """``fc2(act(a) * gate)`` (or ``fc2(act(a))``) that keeps only ``a`` and ``gate`` for the backward pass.

    Why: autograd would keep four hidden-width tensors per MLP — act's input, its output, the gate
    and their product (fc2's input) — the largest activations of a training step (384 MB of the
    1 GB a base 4M-7 step holds). The backward pass recomputes the cheap elementwise part instead;
    the results are bit-identical. Under autocast fc2 runs in the autocast dtype, as ``Linear`` does.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, gate: torch.Tensor | None, weight: torch.Tensor,  # noqa: ANN001
                bias: torch.Tensor | None, act: nn.Module, dtype: torch.dtype | None) -> torch.Tensor:
        h = act(a) if gate is None else act(a) * gate
        h = h.to(dtype) if dtype is not None else h
        ctx.save_for_backward(a, gate, weight)
        ctx.act, ctx.has_bias = act, bias is not None
        return F.linear(h, weight.to(h.dtype), None if bias is None else bias.to(h.dtype))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN001, ANN205
        a, gate, weight = ctx.saved_tensors
        need_a, need_gate, need_w, need_b = ctx.needs_input_grad[:4]
        with torch.enable_grad():
            inputs = [t.detach().requires_grad_() for t in (a, gate) if t is not None]
            h = ctx.act(inputs[0]) if gate is None else ctx.act(inputs[0]) * inputs[1]
        grad_h, grad_w, grad_b = _linear_grads(grad_out, h.detach().to(grad_out.dtype), weight, need_a or need_gate,
                                               need_w, ctx.has_bias and need_b)
        grad_a = grad_gate = None
        if grad_h is not None:
            grads = torch.autograd.grad(h, inputs, grad_h.to(h.dtype))
            grad_a, grad_gate = grads[0], grads[1] if gate is not None else None
        return grad_a, grad_gate, grad_w, grad_b, None, None


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
