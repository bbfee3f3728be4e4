"""Quantizers: the discrete bottleneck every open4m tokenizer shares.

Two kinds, both state-dict compatible with the released 4M tokenizers:

* :class:`CosineVQ` — nearest code by cosine similarity (l2-normalised latents and codes), codebook
  learned by exponential moving averages instead of gradients, dead codes revived from the batch.
  Stored under ``quantize._codebook.{embed,cluster_size,initted}`` like the official checkpoints.
* :class:`Memcodes` — each head attends over a learned codebook (keys/values from per-head linear
  maps) and picks one entry, hard straight-through Gumbel during training, argmax at inference.

Both return a :class:`QuantizerOutput` whose ``indices`` have the official layout: ``(B, h, w)`` for a
single head, ``(B, heads, h, w)`` for several.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError

__all__ = ["QuantizerOutput", "CodebookStats", "CosineVQ", "Memcodes", "codebook_stats"]


@dataclass
class QuantizerOutput:
    """What a quantizer hands back: the quantized latent, its training loss and the token ids."""

    quantized: torch.Tensor  # (B, D, h, w)
    loss: torch.Tensor  # scalar; commitment loss (zero for memcodes and at inference)
    indices: torch.Tensor  # (B, h, w) or (B, heads, h, w), int64


@dataclass(frozen=True)
class CodebookStats:
    """How well the codebook is used: the numbers to watch for codebook collapse."""

    usage: float  # fraction of codes picked at least once
    perplexity: float  # exp(entropy) of the code histogram; equals the codebook size when uniform

    def as_dict(self) -> dict[str, float]:
        return {"codebook_usage": self.usage, "codebook_perplexity": self.perplexity}


def codebook_stats(indices: torch.Tensor, codebook_size: int) -> CodebookStats:
    """Usage and perplexity of a batch of token ids (per-batch, so small batches understate usage)."""
    counts = torch.bincount(indices.reshape(-1).long(), minlength=codebook_size).double()
    probs = counts / counts.sum().clamp_min(1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    return CodebookStats(usage=float((counts > 0).double().mean()), perplexity=float(entropy.exp()))


def _check_latent(x: torch.Tensor, dim: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != dim:
        raise DataError(f"{who} expects latents of shape (B, {dim}, h, w), got {tuple(x.shape)}; pass the "
                        "encoder's output (tokenizer.encode takes images)")


class _EMACodebook(nn.Module):
    """The codebook buffers, in a submodule so official keys (`quantize._codebook.*`) load as-is."""

    def __init__(self, codebook_size: int, dim: int, kmeans_init: bool) -> None:
        super().__init__()
        embed = torch.zeros(codebook_size, dim) if kmeans_init else F.normalize(torch.randn(codebook_size, dim), dim=-1)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("initted", torch.tensor([0.0 if kmeans_init else 1.0]))


class CosineVQ(nn.Module):
    """Cosine-similarity VQ with an EMA codebook (the quantizer of every released 4M VQ-VAE/DiVAE).

    Why EMA: codes follow the mean of the latents assigned to them without fighting the encoder's
    optimiser, which together with dead-code replacement keeps large codebooks (16k) in use.
    Decoding uses the stored rows as they are (only approximately unit length after EMA updates),
    exactly like the official quantizer — re-normalising them would change every decoded image.

    ``heads > 1`` splits the latent channels into that many chunks that share one codebook of
    ``dim // heads``-dimensional codes (tokens then have shape ``(B, heads, h, w)``).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        heads: int = 1,
        decay: float = 0.99,
        commitment_weight: float = 1.0,
        threshold_dead_code: float = 0.25,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"CosineVQ: latent dim {dim} must be divisible by heads={heads}")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"CosineVQ: EMA decay must lie in [0, 1), got {decay}")
        self.dim, self.heads, self.codebook_size = dim, heads, codebook_size
        self.code_dim = dim // heads
        self.decay, self.commitment_weight, self.eps = decay, commitment_weight, eps
        self.threshold_dead_code, self.kmeans_iters = threshold_dead_code, kmeans_iters
        self._codebook = _EMACodebook(codebook_size, self.code_dim, kmeans_init)

    @property
    def codebook(self) -> torch.Tensor:
        """The stored codebook rows ``(K, dim // heads)``."""
        return self._codebook.embed

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B * heads * h * w, D / heads), head-major like the token layout."""
        b, _, h, w = x.shape
        return x.reshape(b, self.heads, self.code_dim, h, w).permute(0, 1, 3, 4, 2).reshape(-1, self.code_dim)

    def _unflatten(self, flat: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        return flat.reshape(b, self.heads, h, w, self.code_dim).permute(0, 1, 4, 2, 3).reshape(b, self.dim, h, w)

    def _indices_shape(self, idx: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        idx = idx.reshape(b, self.heads, h, w)
        return idx[:, 0] if self.heads == 1 else idx

    @torch.no_grad()
    def _kmeans_init(self, latents: torch.Tensor) -> None:
        """Spherical k-means on the first batch: starts every code where data actually lives."""
        n = latents.shape[0]
        pick = torch.randint(0, n, (self.codebook_size,), device=latents.device)
        centers = latents[pick].clone()
        for _ in range(self.kmeans_iters):
            assign = (latents @ centers.t()).argmax(-1)
            sums = torch.zeros_like(centers).index_add_(0, assign, latents)
            counts = torch.bincount(assign, minlength=self.codebook_size)
            moved = F.normalize(sums, dim=-1)
            centers = torch.where((counts > 0)[:, None], moved, centers)
        self._codebook.embed.copy_(centers)
        self._codebook.cluster_size.copy_(torch.bincount(assign, minlength=self.codebook_size).float())
        self._codebook.initted.fill_(1.0)

    @torch.no_grad()
    def _ema_update(self, latents: torch.Tensor, idx: torch.Tensor) -> None:
        cb = self._codebook
        onehot = F.one_hot(idx, self.codebook_size).type(latents.dtype)
        bins = onehot.sum(0)
        cb.cluster_size.mul_(self.decay).add_(bins, alpha=1 - self.decay)
        means = F.normalize((onehot.t() @ latents) / bins.clamp_min(1)[:, None], dim=-1)
        target = torch.where((bins == 0)[:, None], F.normalize(cb.embed, dim=-1), means)
        cb.embed.mul_(self.decay).add_(target, alpha=1 - self.decay)
        self._replace_dead_codes(latents)

    @torch.no_grad()
    def _replace_dead_codes(self, latents: torch.Tensor) -> None:
        """Codes whose EMA usage fell below the threshold restart at random latents of this batch."""
        if self.threshold_dead_code <= 0:
            return
        dead = self._codebook.cluster_size < self.threshold_dead_code
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        pick = torch.randint(0, latents.shape[0], (n_dead,), device=latents.device)
        self._codebook.embed[dead] = latents[pick]

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        _check_latent(x, self.dim, "CosineVQ")
        b, _, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            flat = self._flatten(x)
            unit = F.normalize(flat, dim=-1)
            if self.training and not bool(self._codebook.initted.item()):
                self._kmeans_init(unit)
            idx = (unit @ F.normalize(self.codebook, dim=-1).t()).argmax(-1)
            quant = F.embedding(idx, self.codebook)
            loss = torch.zeros((), device=x.device)
            if self.training:
                self._ema_update(unit, idx)
                if self.commitment_weight > 0:
                    loss = F.mse_loss(quant.detach(), flat) * self.commitment_weight
                quant = flat + (quant - flat).detach()  # straight-through estimator
        return QuantizerOutput(self._unflatten(quant, b, h, w), loss, self._indices_shape(idx, b, h, w))

    def indices_to_embedding(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids in the official layout -> quantized latent ``(B, dim, h, w)``."""
        indices = _grid_ids(indices, self.heads, self.codebook_size, "CosineVQ")
        b, _, h, w = indices.shape
        flat = F.embedding(indices.reshape(-1), self.codebook)
        return self._unflatten(flat, b, h, w)


def _grid_ids(indices: torch.Tensor, heads: int, codebook_size: int, who: str) -> torch.Tensor:
    """Ids as ``(B, heads, h, w)``, checked: a quantizer is handed ids from outside (a file, another tokenizer), and
    ids of another shape or codebook would otherwise index out of range deep in an embedding lookup."""
    if indices.ndim == 3 and heads == 1:
        indices = indices[:, None]
    if indices.ndim != 4 or indices.shape[1] != heads:
        wanted = "(B, h, w)" if heads == 1 else f"(B, {heads}, h, w)"
        raise DataError(f"{who} expects token ids of shape {wanted}, got {tuple(indices.shape)}; reshape the ids "
                        "to their token grid (or pass flat (B, N) ids to tokenizer.decode)")
    _check_ids(indices, codebook_size)
    return indices


def _check_ids(indices: torch.Tensor, codebook_size: int) -> None:
    if indices.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise DataError(f"token ids must be an integer tensor, got {indices.dtype}; cast them with .long()")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= codebook_size):
        raise DataError(
            f"token ids must lie in [0, {codebook_size}) for this tokenizer's codebook, "
            f"got range [{int(indices.min())}, {int(indices.max())}] — were they made by another tokenizer?"
        )


class _HeadwiseLinear(nn.Module):
    """One bias-free linear map per head: ``(heads, n, d) -> (heads, n, d)``, weight ``(heads, d, d)``."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(heads, dim, dim))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("hnd,hdc->hnc", x, self.weight)


class Memcodes(nn.Module):
    """Attention over a learned codebook, one codebook per head.

    Why: with no EMA statistics to maintain, it trains end to end by gradients (straight-through
    Gumbel), which suits the small vector tokenizers (global embeddings, poses) where a handful of
    codes per vector must carry everything. Keys ``codes``, ``to_k.weight`` and ``to_v.weight``
    match the official checkpoints.
    """

    def __init__(self, dim: int, codebook_size: int, *, heads: int = 1, temperature: float = 1.0) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"Memcodes: latent dim {dim} must be divisible by heads={heads}")
        self.dim, self.heads, self.codebook_size, self.temperature = dim, heads, codebook_size, temperature
        self.head_dim = dim // heads
        self.codes = nn.Parameter(torch.randn(heads, codebook_size, self.head_dim))
        self.to_k = _HeadwiseLinear(heads, self.head_dim)
        self.to_v = _HeadwiseLinear(heads, self.head_dim)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        _check_latent(x, self.dim, "Memcodes")
        b, _, h, w = x.shape
        q = x.reshape(b, self.heads, self.head_dim, h * w).transpose(-1, -2) * self.head_dim**-0.5
        keys, values = self.to_k(self.codes), self.to_v(self.codes)
        logits = torch.einsum("bhid,hjd->bhij", q, keys)
        if self.training:
            attn = F.gumbel_softmax(logits, tau=self.temperature, dim=-1, hard=True)
            idx = attn.argmax(-1)
        else:
            idx = logits.argmax(-1)
            attn = F.one_hot(idx, self.codebook_size).to(values.dtype)
        out = torch.einsum("bhij,hjd->bhid", attn, values)  # (B, heads, n, d)
        quantized = out.transpose(-1, -2).reshape(b, self.dim, h, w)
        indices = idx.reshape(b, self.heads, h, w)
        if self.heads == 1:
            indices = indices[:, 0]
        return QuantizerOutput(quantized, torch.zeros((), device=x.device), indices)

    def indices_to_embedding(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, heads, h, w)`` (or ``(B, h, w)`` for one head) -> latent ``(B, dim, h, w)``."""
        indices = _grid_ids(indices, self.heads, self.codebook_size, "Memcodes")
        b, _, h, w = indices.shape
        values = self.to_v(self.codes)  # (heads, K, d)
        flat = indices.reshape(b, self.heads, h * w)
        picked = torch.stack([values[i][flat[:, i]] for i in range(self.heads)], dim=1)  # (B, heads, n, d)
        return picked.transpose(-1, -2).reshape(b, self.dim, h, w)
