"""Span masking: the spec example, round trips, whole chunks, truncation, sequence embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from open4m.data.masking import AlphaMixture, DirichletMasking, merge_spans
from open4m.data.masking.spans import _span_corrupt, _span_mask, _units

from masking_samples import SPECIAL, WORD


def test_span_masking_matches_the_spec_example():
    # "a b c d e [EOS]" with b, c and [EOS] masked -> input a [S_1] d e [S_2], target [S_1] b c [S_2] [EOS] [S_3]
    a, b, c, d, e = 300, 301, 302, 303, 304
    units = [[a], [b], [c], [d], [e], [3]]
    keep = np.array([1, 0, 0, 1, 1, 0], dtype=bool)
    inp, tgt = _span_corrupt(units, keep, SPECIAL)
    assert inp == [a, 5, d, e, 6]
    assert tgt == [5, b, c, 6, 3, 7]
    assert merge_spans(inp, tgt) == [a, b, c, d, e, 3]


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(WORD, max_size=60),
    n_in=st.integers(0, 70),
    seed=st.integers(0, 2**32 - 1),
    scheme=st.sampled_from(["random", "all", "binary"]),
)
def test_span_mask_round_trip_and_budgets(words, n_in, seed, scheme):
    units = _units(words, "caption", SPECIAL.eos, 256)
    original = [t for u in units for t in u]
    inp, tgt = _span_mask(units, n_in, None, scheme, np.random.default_rng(seed), SPECIAL)
    assert len(inp) <= n_in
    assert merge_spans(inp, tgt) == original
    assert tgt and SPECIAL.is_sentinel(tgt[0]) and SPECIAL.is_sentinel(tgt[-1])


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(WORD, unique=True, max_size=40),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=40),
    n_in=st.integers(0, 40),
    n_tgt=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunk_span_mask_never_splits_a_chunk_between_input_and_target(words, sizes, n_in, n_tgt, seed):
    chunks, i = [], 0
    for size in sizes:
        if i < len(words):
            chunks.append(words[i:i + size])
            i += size
    units = _units(chunks, "det", SPECIAL.eos, 256)
    inp, tgt = _span_mask(units, n_in, n_tgt, "random", np.random.default_rng(seed), SPECIAL)
    assert len(inp) <= n_in and len(tgt) <= n_tgt
    if tgt:
        assert SPECIAL.is_sentinel(tgt[0])
    inp_set, tgt_set = set(inp), set(tgt)
    for chunk in units:
        assert not (set(chunk) & inp_set and set(chunk) & tgt_set), f"chunk {chunk} split between input and target"
        if set(chunk) & inp_set:
            assert set(chunk) <= inp_set, f"chunk {chunk} only partly visible"
    full_inp, full_tgt = _span_mask(units, n_in, None, "random", np.random.default_rng(seed), SPECIAL)
    assert merge_spans(full_inp, full_tgt) == [t for u in units for t in u]


def test_target_truncation_starts_at_a_sentinel_and_is_contiguous():
    units = [[t] for t in range(300, 340)] + [[3]]
    for seed in range(30):
        rng = np.random.default_rng(seed)
        inp, tgt = _span_mask(units, 0, 10, "random", rng, SPECIAL)
        assert inp == [] and len(tgt) == 10 and tgt[0] == SPECIAL.sentinel(1)
        assert tgt[1:] == list(range(300, 309))


def test_sequences_are_truncated_to_whole_chunks_and_get_eos():
    assert _units([300, 301], "caption", 3, 256) == [[300], [301], [3]]
    assert _units([300, 3], "caption", 3, 256) == [[300], [3]]
    assert _units([[1, 2], [3, 4, 5], [6]], "det", 3, 5) == [[1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="1-D"):
        _units(torch.zeros(2, 2, dtype=torch.long), "caption", 3, 256)


def test_sequence_embeddings_are_span_masked_inputs_with_zero_sentinels():
    mixture = AlphaMixture.single(["t5_caption"], 1.0, keep="random")
    masker = DirichletMasking(mixture, 20, 0)
    emb = torch.arange(1, 41, dtype=torch.float32)[:, None].repeat(1, 4)  # row i holds value i+1
    for seed in range(20):
        entry = masker({"t5_caption": emb}, seed)["t5_caption"]
        visible = entry["tensor"][~entry["input_mask"]][:, 0].tolist()
        assert len(visible) <= 20 and entry["target_mask"].all()
        rows = [v for v in visible if v != 0]
        assert rows == sorted(rows) and len(set(rows)) == len(rows)  # kept rows keep their order
        assert int(entry["input_mask"].numel()) == 77
