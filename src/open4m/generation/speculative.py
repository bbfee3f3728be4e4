"""Exact speculative decoding for sequence targets, with guesses looked up in the text itself.

Why: with a KV cache, one autoregressive step is bound by memory, not arithmetic. Each new token
reads every decoder matrix and the output head once (about 0.5 GB at base size), while the
multiply-adds for one token are few. Checking several guessed tokens in the same pass therefore
costs about as much as producing one. A decoder pass that confirms guesses yields several tokens.

Where the guesses come from ("prompt lookup"): the longest recent n-gram (n <= 3) that ends the
sequence so far is looked up earlier in the sequence and in the visible input sequences, and what
followed it is proposed. The copy may overlap itself, so a run or a repeating pattern continues
(`a b a b` proposes `a b a b ...`). Box lists, poses, metadata and templated captions repeat
themselves often. Free text rarely does, and then few guesses are made or confirmed.

Exactness:
- At temperature 0 a guess is kept only where it equals the model's argmax, so the output is the
  plain greedy output token for token.
- When sampling, each guess is kept with the model's probability of it. The first rejected
  position is redrawn from the model's distribution without that token (speculative sampling
  with a one-point draft). The samples follow the model's distribution exactly, but a seed
  draws different samples than plain decoding does.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..ops import additive_mask
from .sampling import GREEDY_TEMPERATURE, filter_logits

MAX_NGRAM = 3


def _copy_after(seq: Sequence[int], start: int, k: int) -> list[int]:
    """k tokens copied from seq[start:], continuing into the copy itself where seq runs out."""
    out = list(seq[start:start + k])
    period = len(seq) - start
    while len(out) < k:
        out.append(out[len(out) - period])
    return out


def lookup_draft(history: Sequence[int], sources: Sequence[Sequence[int]], k: int,
                 max_ngram: int = MAX_NGRAM) -> list[int]:
    """Up to `k` guesses for the tokens after `history`; empty when nothing matches.

    The final n-gram of `history` (longest first) is searched backwards in `history` itself (not
    counting the final occurrence), then in each of `sources`. The tokens that followed the
    match are copied, overlapping into the copy where the match runs into the present.
    """
    if k <= 0 or not history:
        return []
    for n in range(min(max_ngram, len(history)), 0, -1):
        suffix = list(history[-n:])
        for i in range(len(history) - n - 1, -1, -1):
            if list(history[i:i + n]) == suffix:
                return _copy_after(history, i + n, k)
        for source in sources:
            for i in range(len(source) - n - 1, -1, -1):
                if list(source[i:i + n]) == suffix:
                    return list(source[i + n:i + n + k])
    return []


class DraftLength:
    """How many tokens to guess in the next pass: grow while guesses are kept, back off when not.

    Why: a guess costs a little decoder work even when rejected (a pass over 5 positions takes
    about 1.4x a pass over 1 on the CPU at base size), so text that does not repeat itself must
    stop paying for guesses. After a pass whose guesses were all rejected, the next 1, 2, 4, ...,
    16 passes guess nothing; any kept guess ends the pause.
    """

    MAX_PAUSE = 16

    def __init__(self, most: int) -> None:
        self.most, self.length, self.pause, self.skip = most, min(most, 4), 0, 0

    def next(self) -> int:
        if self.skip:
            self.skip -= 1
            return 0
        return self.length

    def update(self, guessed: int, kept: int) -> None:
        if not guessed:
            return
        if kept == 0:
            self.pause = min(2 * self.pause or 1, self.MAX_PAUSE)
            self.skip, self.length = self.pause, 1
            return
        self.pause = 0
        self.length = min(self.most, 2 * guessed) if kept == guessed else kept


def drafts_tensor(drafts: list[list[int]], histories: list[list[int]], device: torch.device) -> torch.Tensor:
    """Rows of guesses as one (B, d) tensor; short rows are padded by repeating their last token."""
    d = max(len(x) for x in drafts)
    rows = [x + [(x or h)[-1]] * (d - len(x)) for x, h in zip(drafts, histories)]
    return torch.tensor(rows, dtype=torch.long, device=device)


def causal_block_mask(cached: int, new: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive (1, 1, new, cached + new) mask: new token i sees the cache and new tokens 0..i."""
    keys = torch.arange(cached + new, device=device)
    blocked = keys[None, :] > (cached + torch.arange(new, device=device))[:, None]
    return additive_mask(blocked, dtype)[None, None]


def verify(logits: torch.Tensor, drafts: torch.Tensor, finished: torch.Tensor, temperature: float,
           top_k: int | float = 0, top_p: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The tokens that one verifying pass yields: (B, m + 1) for the m guesses every row keeps.

    `logits` (B, d + 1, V) are the model's predictions after the last committed token and after
    each of the `d` guesses in `drafts` (B, d). Rows in `finished` (already past their end token)
    do not limit m. Every row gets the same number of tokens, so the batch stays rectangular:
    rows that kept more guesses keep only m of them, which is still an exact sample.
    """
    d = drafts.shape[1]
    if temperature < GREEDY_TEMPERATURE:
        best = logits.argmax(dim=-1)
        kept = _kept(best[:, :d] == drafts, finished)
        m = int(kept.min())
        return best[:, :m + 1]
    probs = (filter_logits(logits, top_k, top_p).float() / temperature).softmax(dim=-1)
    p_guess = probs[:, :d].gather(-1, drafts[..., None]).squeeze(-1)
    draws = torch.rand(p_guess.shape, generator=generator, device=p_guess.device)
    kept = _kept(draws < p_guess, finished)
    m = int(kept.min())
    dist = probs[:, m].clone()
    if m < d:
        rejected = kept == m
        dist[rejected] = dist[rejected].scatter(-1, drafts[rejected, m:m + 1], 0.0)
        # A guess of probability ~1 is never rejected; guard the all-zero rest anyway.
        empty = dist.sum(dim=-1) <= 0
        dist[empty] = probs[empty, m]
    last = torch.multinomial(dist, 1, generator=generator)
    if m < d:
        last = torch.where((kept > m)[:, None], drafts[:, m:m + 1], last)
    return torch.cat([drafts[:, :m], last], dim=1)


def _kept(matches: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """Per row, how many leading guesses were kept; finished rows count as keeping all."""
    kept = matches.to(torch.int64).cumprod(dim=1).sum(dim=1)
    return torch.where(finished, matches.shape[1], kept)


__all__ = ["DraftLength", "causal_block_mask", "drafts_tensor", "lookup_draft", "verify"]
