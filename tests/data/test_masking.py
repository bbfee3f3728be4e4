"""Masking: budgets, exclusivity, sentinel round-trips, reproducibility, official configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from open4m import modalities
from open4m.batch import validate_mod_dict
from open4m.data.masking import (
    FOURM_7_MIXTURE,
    FOURM_21_MIXTURE,
    OFFICIAL_MIXTURES,
    AlphaComponent,
    AlphaMixture,
    DirichletMasking,
    SpecialTokens,
    TransferMasking,
    collate,
    merge_spans,
    split_sequence,
)
from open4m.data.masking import _span_mask, _units

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


@pytest.mark.parametrize("preset,mixture,budget", [("4M-7", FOURM_7_MIXTURE, 128), ("4M-21", FOURM_21_MIXTURE, 256)])
def test_official_mixtures_respect_budgets_and_exclusivity(preset, mixture, budget):
    masker = DirichletMasking(mixture, budget, budget)
    sample = sample_for(modalities.PRESETS[preset])
    for seed in range(40):
        # A fresh generator per seed: __call__ draws the same budgets as sample_budgets first.
        _, ins, tgts = masker.sample_budgets(seed)
        assert sum(ins.values()) <= budget and sum(tgts.values()) <= budget
        out = masker(sample, seed)
        for name, entry in out.items():
            check_entry_invariants(name, entry, ins[name], tgts[name])


def test_budgets_are_exact_when_no_cap_binds():
    mixture = AlphaMixture.single(["tok_rgb@224", "tok_depth@224", "caption"], 1.0)
    masker = DirichletMasking(mixture, 100, 60)
    rng = np.random.default_rng(1)
    for _ in range(50):
        _, ins, tgts = masker.sample_budgets(rng)
        assert sum(ins.values()) == 100 and sum(tgts.values()) == 60


def test_image_targets_capped_by_what_inputs_leave():
    mixture = AlphaMixture((AlphaComponent("x", {"tok_rgb@224": 1.0}, {"tok_rgb@224": 1.0}),))
    masker = DirichletMasking(mixture, 150, 150)
    _, ins, tgts = masker.sample_budgets(0)
    assert ins["tok_rgb@224"] == 150 and tgts["tok_rgb@224"] == 196 - 150


def test_zero_alpha_means_never_and_roles_are_enforced():
    masker = DirichletMasking(FOURM_21_MIXTURE, 256, 256)
    rng = np.random.default_rng(2)
    for _ in range(200):
        comp, ins, tgts = masker.sample_budgets(rng)
        assert tgts["rgb@224"] == 0 and tgts["t5_caption"] == 0  # input-only by kind
        if FOURM_21_MIXTURE.components[comp].name == "rgb-to-all":
            assert all(v == 0 for k, v in ins.items() if k != "rgb@224")
            assert ins["rgb@224"] == 196


def test_input_only_and_target_only():
    mixture = AlphaMixture.single(["tok_rgb@224", "tok_depth@224"], 1.0)
    masker = DirichletMasking(mixture, 64, 64, input_only=["tok_rgb@224"], target_only=["tok_depth@224"])
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, ins, tgts = masker.sample_budgets(rng)
        assert ins == {"tok_rgb@224": 64, "tok_depth@224": 0}
        assert tgts == {"tok_rgb@224": 0, "tok_depth@224": 64}
    with pytest.raises(ValueError, match="both input-only and target-only"):
        DirichletMasking(mixture, input_only=["tok_rgb@224"], target_only=["tok_rgb@224"])
    with pytest.raises(ValueError, match="does not mention"):
        DirichletMasking(mixture, input_only=["caption"])


def test_budget_range_and_mixture_weights():
    a = AlphaComponent("a", {"tok_rgb@224": 1.0}, {"tok_depth@224": 1.0})
    b = AlphaComponent("b", {"tok_depth@224": 1.0}, {"tok_rgb@224": 1.0})
    masker = DirichletMasking(AlphaMixture((a, b), weights=(3.0, 1.0)), (10, 20), 5)
    rng = np.random.default_rng(4)
    draws = [masker.sample_budgets(rng) for _ in range(2000)]
    share_a = np.mean([c == 0 for c, _, _ in draws])
    assert 0.70 < share_a < 0.80
    totals = {sum(i.values()) for _, i, _ in draws}
    assert totals == set(range(10, 21))


def test_same_seed_same_masks_and_no_global_rng():
    masker = DirichletMasking(FOURM_7_MIXTURE)
    sample = sample_for(modalities.FOURM_7)
    torch.manual_seed(0)
    np.random.seed(0)
    first = masker(sample, np.random.default_rng(7))
    torch.manual_seed(123)
    np.random.seed(123)
    second = masker(sample, 7)
    for name in first:
        for key in first[name]:
            assert torch.equal(first[name][key], second[name][key]), (name, key)


def test_collate_gives_a_valid_batch():
    masker = DirichletMasking(FOURM_21_MIXTURE, 256, 256)
    sample = sample_for(modalities.FOURM_21)
    rng = np.random.default_rng(5)
    batch = collate([masker(sample, rng) for _ in range(3)])
    assert validate_mod_dict(batch) == 3
    assert batch["caption"]["tensor"].shape == (3, 2 * 257)
    assert batch["t5_caption"]["tensor"].shape == (3, 77, 8)
    with pytest.raises(ValueError, match="has modalities"):
        collate([masker(sample, rng), {"caption": masker(sample, rng)["caption"]}])


def test_span_masking_matches_the_spec_example():
    # "a b c d e [EOS]" with b, c and [EOS] masked -> input a [S_1] d e [S_2], target [S_1] b c [S_2] [EOS] [S_3]
    from open4m.data.masking import _span_corrupt

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


def test_transfer_masking():
    masker = TransferMasking(["rgb@224", "caption"], ["tok_depth@224", "det"])
    sample = sample_for(["rgb@224", "caption", "tok_depth@224", "det", "tok_normal@224"])
    out = masker(sample)
    assert set(out) == {"rgb@224", "caption", "tok_depth@224", "det"}
    assert not out["rgb@224"]["input_mask"].any() and out["rgb@224"]["target_mask"].all()
    depth = out["tok_depth@224"]
    assert depth["input_mask"].all() and not depth["target_mask"].any()
    assert int(depth["decoder_attention_mask"][0]) == 196
    cap_in, cap_tgt = split_sequence(out["caption"])
    assert cap_in == sample["caption"] + [3] and cap_tgt == []
    det_in, det_tgt = split_sequence(out["det"])
    assert det_in == [] and det_tgt[0] == 5 and det_tgt[-1] == 6
    assert merge_spans([5], det_tgt) == [t for c in sample["det"] for t in c] + [3]
    assert validate_mod_dict(collate([out, out])) == 2
    with pytest.raises(ValueError, match="cannot be a target"):
        TransferMasking(["caption"], ["rgb@224"])
    with pytest.raises(ValueError, match="both inputs and targets"):
        TransferMasking(["caption"], ["caption"])


def test_official_yaml_round_trip():
    config = {
        "sampling_weights": [1.0, 0.5],
        "alphas_mixture": {
            "rgb@224": {"input_alphas": [1000.0, 0.5], "target_alphas": [0.0, 0.0]},
            "caption": {"input_alphas": [0.0, 0.5], "target_alphas": [0.5, 0.5], "keep": ["random", "all"]},
        },
    }
    mixture = AlphaMixture.from_official(config)
    assert mixture.weights == (1.0, 0.5)
    assert mixture.components[1].keep_scheme("caption") == "all"
    assert mixture.components[0].input_alphas == {"rgb@224": 1000.0, "caption": 0.0}
    with pytest.raises(ValueError, match="same number of alphas"):
        AlphaMixture.from_official({"caption": {"input_alphas": [1.0], "target_alphas": [1.0, 2.0]}})


def test_official_mixture_facts():
    assert set(OFFICIAL_MIXTURES) == {"4m-7", "4m-7-capbias", "4m-21"}
    assert set(FOURM_7_MIXTURE.modalities) == set(modalities.FOURM_7)
    assert set(FOURM_21_MIXTURE.modalities) == set(modalities.FOURM_21)
    names = [c.name for c in FOURM_21_MIXTURE.components]
    assert names == ["all-to-all-a0.01", "all-to-all-a0.1", "all-to-all-a1", "all-to-all-a10",
                     "rgb-to-all", "caption-biased", "t5-biased"]
    assert FOURM_21_MIXTURE.weights == (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5)
    cap = FOURM_21_MIXTURE.components[5]
    assert cap.input_alphas["caption"] == 5.0 and cap.keep_scheme("caption") == "all"
    assert cap.target_alphas["caption"] == 0.0 and cap.input_alphas["tok_rgb@224"] == 0.05
    assert all(c.keep_scheme("color_palette") == "binary" for c in FOURM_21_MIXTURE.components)


def test_alpha_strings_and_errors():
    mix = AlphaMixture.single(["caption", "det"], "1.0-0.5", "0.1")
    comp = mix.components[0]
    assert comp.input_alphas == {"caption": 1.0, "det": 0.5} and comp.target_alphas == {"caption": 0.1, "det": 0.1}
    with pytest.raises(ValueError, match="one or one each"):
        AlphaMixture.single(["caption", "det"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="alphas must be >= 0"):
        AlphaComponent("bad", {"caption": -1.0}, {})
    with pytest.raises(ValueError, match="keep scheme"):
        AlphaComponent("bad", {"caption": 1.0}, {}, {"caption": "most"})
    with pytest.raises(KeyError, match="Did you mean"):
        DirichletMasking(AlphaMixture.single(["tok_rgb@22"], 1.0))
    with pytest.raises(ValueError, match="never sees"):
        DirichletMasking(AlphaMixture.single(["depth"], 1.0))
    masker = DirichletMasking(AlphaMixture.single(["tok_rgb@224", "caption"], 1.0))
    with pytest.raises(ValueError, match="lacks modalities"):
        masker({"caption": [300]}, 0)
    with pytest.raises(ValueError, match="expected 196 tokens"):
        masker({"caption": [300], "tok_rgb@224": torch.zeros(10, dtype=torch.long)}, 0)
    with pytest.raises(TypeError, match="Generator"):
        masker.sample_budgets(0.5)


ALPHA = st.sampled_from([0.0, 0.01, 0.5, 1.0, 10.0, 1000.0])
SMALL_MODS = ("rgb@224", "tok_rgb@224", "tok_depth@224", "caption", "det")


@settings(max_examples=60, deadline=None)
@given(
    in_alphas=st.lists(ALPHA, min_size=len(SMALL_MODS), max_size=len(SMALL_MODS)),
    tgt_alphas=st.lists(ALPHA, min_size=len(SMALL_MODS), max_size=len(SMALL_MODS)),
    n_in=st.integers(0, 400),
    n_tgt=st.integers(0, 400),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_mixture_keeps_budgets_caps_and_exclusivity(in_alphas, tgt_alphas, n_in, n_tgt, seed):
    mixture = AlphaMixture.single(SMALL_MODS, in_alphas, tgt_alphas)
    masker = DirichletMasking(mixture, n_in, n_tgt)
    _, ins, tgts = masker.sample_budgets(seed)
    assert sum(ins.values()) <= n_in and sum(tgts.values()) <= n_tgt
    for name, alpha in zip(SMALL_MODS, in_alphas):
        assert alpha > 0 or ins[name] == 0
    for name, alpha in zip(SMALL_MODS, tgt_alphas):
        assert alpha > 0 or tgts[name] == 0
    assert tgts["rgb@224"] == 0
    for name in ("rgb@224", "tok_rgb@224", "tok_depth@224"):
        assert ins[name] + tgts[name] <= 196
    caps_bind = any(ins[m] == 196 for m in SMALL_MODS[:3]) or ins["caption"] == 256 or ins["det"] == 256
    if sum(in_alphas) > 0 and not caps_bind:
        assert sum(ins.values()) == n_in
    out = masker(sample_for(SMALL_MODS), seed)
    for name, entry in out.items():
        check_entry_invariants(name, entry, ins[name], tgts[name])
