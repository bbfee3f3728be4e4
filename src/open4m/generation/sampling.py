"""Token sampling primitives shared by every decoding scheme.

They follow the official sampler's conventions exactly, because generation parity depends on
them: filtering happens on the raw logits (before the temperature), top-k may be a fraction of
the vocabulary, top-p always keeps the most likely token, a temperature of (almost) zero is
argmax with confidence 1, and the confidence of a sampled token is its probability under the
filtered, tempered distribution (MaskGIT ranks positions by it). Randomness only ever comes from
the `torch.Generator` passed in.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

GREEDY_TEMPERATURE = 1e-10  # |t| below this means argmax


def _top_k_count(top_k: int | float, vocab: int) -> int:
    if isinstance(top_k, bool) or top_k < 0:
        raise ConfigError(f"top_k={top_k!r}: give a count >= 0 or a fraction in (0, 1]; 0 disables it")
    if isinstance(top_k, float):
        if top_k > 1:
            raise ConfigError(f"top_k={top_k}: a float is a fraction of the vocabulary in (0, 1]; give an int for a count")
        return min(int(top_k * vocab), vocab)
    return min(int(top_k), vocab)


def filter_logits(logits: torch.Tensor, top_k: int | float = 0, top_p: float = 0.0) -> torch.Tensor:
    """Set the logits outside the top-k and outside the top-p nucleus to -inf (new tensor).

    Works on any (..., vocab) shape. Ties at the k-th value are all kept, as in the official code.
    """
    if not 0.0 <= top_p <= 1.0:
        raise ConfigError(f"top_p={top_p}: must lie in [0, 1]; 0 disables nucleus filtering")
    out = logits.clone()
    vocab = logits.shape[-1]
    if top_k:
        k = _top_k_count(top_k, vocab)
        if k == 0:
            raise ConfigError(f"top_k={top_k} keeps no token of a {vocab}-token vocabulary; raise it")
        kth = torch.topk(out, k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p > 0.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative > top_p
        # Shift right: the token that crosses the threshold stays, and the top token always does.
        drop_sorted = torch.cat([torch.zeros_like(drop_sorted[..., :1]), drop_sorted[..., :-1]], dim=-1)
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | float = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row of (..., vocab) logits; return (ids, confidence of each id).

    A temperature within 1e-10 of zero returns the argmax with confidence 1 (no filtering,
    no randomness), as the official sampler does.
    """
    if temperature < 0:
        raise ConfigError(f"temperature={temperature} < 0; use 0 for greedy decoding")
    if temperature < GREEDY_TEMPERATURE:
        ids = logits.argmax(dim=-1)
        return ids, torch.ones(ids.shape, dtype=torch.float32, device=logits.device)
    return draw_tokens(token_probabilities(logits, temperature, top_k, top_p), generator)


def token_probabilities(logits: torch.Tensor, temperature: float | torch.Tensor, top_k: int | float = 0,
                        top_p: float = 0.0) -> torch.Tensor:
    """The fp32 distribution `sample_tokens` draws from: filtered raw logits over the temperature, softmaxed.

    A compiled sampler step passes the temperature as a 0-d tensor, so a temperature schedule
    (a new value every step) reuses one graph instead of recompiling per value.
    """
    return (filter_logits(logits, top_k, top_p).float() / temperature).softmax(dim=-1)


def draw_tokens(probs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per row of (..., vocab) probabilities; returns (ids, probability of each id).

    Kept apart from the distribution because TorchDynamo cannot trace a `torch.Generator`
    argument: a compiled step computes the probabilities and this draw stays eager, so a seeded
    generator gives the same tokens compiled or not.
    """
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)
    confidence = flat.gather(-1, ids)
    return ids.reshape(probs.shape[:-1]), confidence.reshape(probs.shape[:-1])


def guide(logits: torch.Tensor, weights: tuple[float, ...] | torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance: uncond + sum_i w_i (cond_i - uncond); passes are stacked [cond_1, ..., cond_k, uncond].

    `weights` may be a 1-d tensor (a compiled step takes it so a guidance schedule does not recompile).
    """
    parts = logits.chunk(len(weights) + 1)
    uncond = parts[-1]
    out = uncond
    for w, cond in zip(weights, parts[:-1]):
        out = out + (cond - uncond) * w
    return out


__all__ = ["GREEDY_TEMPERATURE", "filter_logits", "sample_tokens", "token_probabilities", "draw_tokens", "guide"]
