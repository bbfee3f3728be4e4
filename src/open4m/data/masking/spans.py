"""T5-style span masking of sequences, and its inverse.

A sequence is masked in *units*: single tokens, or whole chunks (one box, one metadata pair) that
are never split between input and target. Each run of dropped units becomes one sentinel `[S_k]`
in the input, and the target lists each sentinel followed by the tokens it hides, so inputs and
targets are disjoint by construction; :func:`merge_spans` inverts the corruption (also on
predictions, at generation time). As in the official code the keep decision is a Bernoulli draw
per unit whose probability comes from the component's keep scheme (`KEEP_SCHEMES`), never a
span-length law. Sequence embeddings (`t5_caption`) reuse it on their row indices.

Sentinel, `[EOS]` and `[PAD]` ids come from :class:`open4m.modalities.SpecialTokens`.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from ...errors import ConfigError, DataError
from ...modalities import Kind, Modality, SpecialTokens

#: How much of a sequence input tends to stay visible (see `_keep_probability`).
KEEP_SCHEMES = ("random", "all", "binary")
_KEEP_DECAY = 0.9  # official factor by which an over-budget sequence's keep probability shrinks

#: One modality of a sample: token ids, chunks of ids, pixels or embeddings (docs/masking.md).
SampleValue = torch.Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[int]]


def _units(value: SampleValue, name: str, eos: int, max_tokens: int) -> list[list[int]]:
    """A sequence as masking units: single tokens, or chunks (one box, one metadata pair).

    Appends the [EOS] unit unless present and keeps only whole units within `max_tokens`,
    as the official pipeline does after tokenizing.
    """
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if value.ndim != 1:
            raise DataError(f"modality {name!r}: a sequence must be 1-D token ids or a list of chunks, got shape "
                            f"{tuple(value.shape)}; give one sample's ids (no batch dimension)")
        value = value.tolist()
    items = list(value)
    chunked = bool(items) and not isinstance(items[0], (int, np.integer))
    units = [[int(t) for t in c] for c in items] if chunked else [[int(t)] for t in items]
    if not units or units[-1] != [eos]:
        units.append([eos])
    kept, total = [], 0
    for u in units:
        total += len(u)
        if total > max_tokens:
            break
        kept.append(u)
    if not kept:
        raise DataError(f"modality {name!r}: its first chunk is longer than max_tokens={max_tokens}; shorten the "
                        "sequence's first chunk or register the modality with a larger max_tokens")
    return kept


def _span_corrupt(units: list[list[int]], keep: np.ndarray, special: SpecialTokens) -> tuple[list[int], list[int]]:
    """Input with each run of dropped units replaced by `[S_k]`; target `[S_1] run_1 ... [S_n+1]`."""
    inp: list[int] = []
    tgt: list[int] = []
    k = 0
    prev_kept = True
    for unit, kept in zip(units, keep):
        if kept:
            inp.extend(unit)
        else:
            if prev_kept:
                k += 1
                inp.append(special.sentinel(k))
                tgt.append(special.sentinel(k))
            tgt.extend(unit)
        prev_kept = bool(kept)
    tgt.append(special.sentinel(k + 1))
    return inp, tgt


def _input_length(lengths: np.ndarray, keep: np.ndarray) -> int:
    """Length of the corrupted input without building it: kept tokens plus one sentinel per run."""
    dropped = ~keep
    run_starts = dropped & np.concatenate(([True], keep[:-1]))
    return int(lengths[keep].sum() + run_starts.sum())


def _keep_probability(scheme: str, rng: np.random.Generator) -> float:
    if scheme == "random":
        return float(rng.random())
    if scheme == "all":
        return 1.0
    return float(rng.integers(2))  # binary


def _span_mask(units: list[list[int]], input_budget: int, target_budget: int | None, scheme: str,
               rng: np.random.Generator, special: SpecialTokens) -> tuple[list[int], list[int]]:
    """Official span masking fitted to both budgets (see docs/masking.md for the rules)."""
    lengths = np.fromiter((len(u) for u in units), dtype=np.int64, count=len(units))
    if input_budget == 0:
        keep = np.zeros(len(units), dtype=bool)
    else:
        p = _keep_probability(scheme, rng)
        keep = rng.random(len(units)) < p
        while _input_length(lengths, keep) > input_budget:
            p *= _KEEP_DECAY
            keep = rng.random(len(units)) < p
    inp, tgt = _span_corrupt(units, keep, special)
    if input_budget == 0:
        inp = []
    if target_budget is not None and len(tgt) > target_budget:
        starts = [i for i, t in enumerate(tgt) if special.is_sentinel(t)]
        start = starts[int(rng.integers(max(1, len(starts) - 1)))]
        if len(tgt) - start >= target_budget:
            tgt = tgt[start:start + target_budget]
        else:  # the earliest sentinel whose tail fits wastes the least budget
            start = next(i for i in starts if len(tgt) - i <= target_budget)
            tgt = tgt[start:]
    return inp, tgt


def merge_spans(input_ids: Iterable[int], target_ids: Iterable[int], special: SpecialTokens = SpecialTokens()) -> list[int]:
    """Undo span masking: put each target span back where its sentinel sits in the input.

    Works on predictions too: a sentinel whose span the target lacks is dropped, target spans
    whose sentinel the input lacks are ignored. An empty input means the whole sequence was
    hidden (an input budget of 0), i.e. `[S_1]`. Token lists carry no padding.
    """
    input_ids = list(input_ids) or [special.sentinel(1)]
    spans: dict[int, list[int]] = {}
    current: int | None = None
    for t in target_ids:
        t = int(t)
        if special.is_sentinel(t):
            current = t
            spans.setdefault(t, [])
        elif current is not None:
            spans[current].append(t)
    out: list[int] = []
    for t in input_ids:
        t = int(t)
        out.extend(spans.get(t, []) if special.is_sentinel(t) else (t,))
    return out


def split_sequence(entry: Mapping[str, torch.Tensor]) -> tuple[list[int], list[int]]:
    """(input ids, target ids) of one masked sequence sample, read off its masks."""
    tensor = entry["tensor"]
    return tensor[~entry["input_mask"]].tolist(), tensor[~entry["target_mask"]].tolist()


def _embedding_units(emb: SampleValue, name: str, max_tokens: int) -> tuple[torch.Tensor, list[list[int]]]:
    """Sequence embeddings are span-masked on their row indices: one unit per row, up to `max_tokens`."""
    emb = torch.as_tensor(emb)
    if emb.dim() != 2 or not emb.is_floating_point():
        raise DataError(f"modality {name!r}: expected float embeddings (L, E), got {tuple(emb.shape)} {emb.dtype}; "
                        "give one sample's float embeddings (no batch dimension)")
    # Rows are named by negative ids so that they can never be mistaken for sentinels.
    return emb, [[-1 - i] for i in range(min(len(emb), max_tokens))]


def _embedding_input(inp: list[int]) -> list[int]:
    return [-1 - t if t < 0 else -1 for t in inp]  # row index, or -1 for a sentinel slot


def _check_sentinels(mods: Iterable[Modality], special: SpecialTokens) -> None:
    """Fail at construction when a sequence could need more sentinels than the vocabulary has."""
    for mod in mods:
        if mod.kind is Kind.SEQUENCE and mod.max_tokens // 2 + 2 > special.num_sentinels:
            raise ConfigError(
                f"modality {mod.name!r}: up to {mod.max_tokens // 2 + 2} sentinels may be needed for "
                f"{mod.max_tokens} tokens but the vocabulary has {special.num_sentinels}; raise num_sentinels"
            )


__all__ = ["KEEP_SCHEMES", "SampleValue", "merge_spans", "split_sequence"]
