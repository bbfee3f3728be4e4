"""Dirichlet budgets and DirichletMasking: budgets, caps, roles, exclusivity, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from open4m import modalities
from open4m.data.masking import FOURM_7_MIXTURE, FOURM_21_MIXTURE, AlphaComponent, AlphaMixture, DirichletMasking

from masking_samples import check_entry_invariants, sample_for


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


def test_masker_errors():
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
