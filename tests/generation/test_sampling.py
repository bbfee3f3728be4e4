"""Sampling primitives: top-k / top-p filtering, temperature, greedy decoding, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from open4m.generation import filter_logits, sample_tokens


def nucleus_by_hand(probs: list[float], top_p: float) -> set[int]:
    """The smallest most-likely prefix whose mass reaches top_p (what nucleus filtering keeps)."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass > top_p:
            break
    return kept


def test_top_k_count_and_fraction():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert torch.isfinite(filter_logits(logits, top_k=0.6)).sum() == 3  # int(0.6 * 5)
    assert torch.isfinite(filter_logits(logits, top_k=50)).all()
    assert torch.equal(filter_logits(logits), logits)


def test_top_p_matches_the_nucleus_definition():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 50, generator=g) * 3
    for top_p in (0.1, 0.5, 0.9, 0.99):
        kept = torch.isfinite(filter_logits(logits, top_p=top_p))
        probs = logits.softmax(-1)
        for b in range(4):
            for n in range(3):
                expected = nucleus_by_hand(probs[b, n].tolist(), top_p)
                assert set(kept[b, n].nonzero().flatten().tolist()) == expected
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(filter_logits(probs, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(probs, top_p=0.4)).tolist() == [[True, False, False, False]]


def test_greedy_is_argmax_with_confidence_one():
    logits = torch.randn(2, 7, 30)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    ids, conf = sample_tokens(logits, temperature=0.0, top_k=3, generator=gen)
    assert torch.equal(ids, logits.argmax(-1)) and torch.equal(conf, torch.ones(2, 7))
    assert torch.equal(gen.get_state(), state), "greedy decoding must not consume randomness"


def test_sampling_is_reproducible_and_respects_filters():
    logits = torch.randn(1000, 20, generator=torch.Generator().manual_seed(1))
    a = sample_tokens(logits, 1.0, top_k=3, generator=torch.Generator().manual_seed(7))
    b = sample_tokens(logits, 1.0, top_k=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    top3 = logits.topk(3, dim=-1).indices
    assert (top3 == a[0][:, None]).any(-1).all(), "a filtered token was sampled"


def test_confidence_is_the_tempered_filtered_probability():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    ids, conf = sample_tokens(logits, temperature=0.5, top_k=2, generator=torch.Generator().manual_seed(3))
    z = math.exp(2.0 / 0.5) + math.exp(1.0 / 0.5)
    expected = math.exp(logits[0, int(ids)].item() / 0.5) / z
    assert conf.item() == pytest.approx(expected, rel=1e-5)


def test_low_temperature_concentrates_on_the_mode():
    logits = torch.tensor([[1.0, 1.5, 0.5]]).repeat(500, 1)
    ids, _ = sample_tokens(logits, temperature=0.01, generator=torch.Generator().manual_seed(0))
    assert (ids == 1).all()


@pytest.mark.parametrize(
    "kwargs,message",
    [({"temperature": -1.0}, "temperature"), ({"top_p": 1.5}, "top_p"), ({"top_k": 1.5}, "fraction"),
     ({"top_k": -1}, "top_k"), ({"top_k": 0.01}, "keeps no token")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_tokens(torch.zeros(1, 10), **{"temperature": 1.0, **kwargs})
