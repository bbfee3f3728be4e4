"""Shared helpers of the masking tests: synthetic samples and the per-entry invariants."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from open4m import modalities
from open4m.data.masking import split_sequence
from open4m.modalities import SpecialTokens

SPECIAL = SpecialTokens()
WORD = st.integers(min_value=204, max_value=29_999)  # ordinary WordPiece ids, never special


def sample_for(names, rng=None, caption_len=30):
    """A synthetic sample with distinct caption tokens, so exclusivity is checkable by value."""
    g = torch.Generator().manual_seed(0)
    sample = {}
    for name in names:
        mod = modalities.get(name)
        if mod.kind is modalities.Kind.PIXELS:
            sample[name] = torch.randn(3, 224, 224, generator=g)
        elif mod.kind is modalities.Kind.IMAGE_TOKENS:
            n = mod.num_tokens()
            sample[name] = torch.randint(0, mod.vocab_size, (n,), generator=g)
        elif mod.kind is modalities.Kind.SEQUENCE_EMBEDDING:
            sample[name] = torch.randn(40, 8, generator=g) + 5.0  # never zero rows
        elif name in ("det", "metadata"):
            sample[name] = [[204 + 4 * i, 1204 + i, 2204 + i, 3204 + i] for i in range(mod.max_tokens // 8)]
        else:
            sample[name] = list(range(1000, 1000 + min(caption_len, mod.max_tokens - 1)))
    return sample


def check_entry_invariants(name, entry, n_in, n_tgt):
    """Inputs and targets never overlap and match their budgets."""
    mod = modalities.get(name)
    visible, target = ~entry["input_mask"], ~entry["target_mask"]
    assert not (visible & target).any(), f"{name}: a position is both input and target"
    if mod.is_image_like:
        assert int(visible.sum()) == n_in
        assert int(target.sum()) == n_tgt
        dam = entry["decoder_attention_mask"]
        if n_tgt:
            first = int(target.nonzero()[0])
            assert int(dam[first]) == n_tgt and int(dam.sum()) == n_tgt
        else:
            assert int(dam.sum()) == 0
    elif mod.kind is modalities.Kind.SEQUENCE:
        assert int(visible.sum()) <= n_in
        assert int(target.sum()) <= n_tgt
        inp, tgt = split_sequence(entry)
        inp_words = [t for t in inp if not SPECIAL.is_sentinel(t)]
        tgt_words = [t for t in tgt if not SPECIAL.is_sentinel(t)]
        assert not set(inp_words) & set(tgt_words), f"{name}: a token is both input and target"
        if tgt:
            assert SPECIAL.is_sentinel(tgt[0]), "a target always starts at a sentinel"
        assert entry["decoder_attention_mask"].tolist() == target.int().tolist()
    else:
        assert int(visible.sum()) <= n_in
        assert not target.any(), "sequence embeddings are never targets"
