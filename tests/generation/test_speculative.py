"""Speculative decoding: guesses from the text itself, exact verification, and the sampler using them."""

from __future__ import annotations

import pytest
import torch

from open4m.generation import Sampler, build_schedule, speculative
from open4m.generation.sampling import filter_logits
from open4m.generation.speculative import DraftLength, causal_block_mask, lookup_draft, verify
from open4m.model import FourM, preset


# ------------------------------------------------------------------------------------------
# Guesses
# ------------------------------------------------------------------------------------------
def test_lookup_copies_what_followed_the_latest_match():
    assert lookup_draft([5, 6, 7, 9, 5, 6], [], 3) == [7, 9, 5]
    # The longest n-gram wins: "0 1 2" matches at the start, although "1 2" occurred more recently.
    assert lookup_draft([0, 1, 2, 3, 4, 1, 2, 8, 0, 1, 2], [], 2) == [3, 4]
    assert lookup_draft([3, 1, 2, 8, 1, 2], [], 1) == [8]


def test_lookup_continues_runs_and_cycles_by_overlapping_copy():
    assert lookup_draft([4, 7, 7], [], 5) == [7, 7, 7, 7, 7]
    assert lookup_draft([1, 2, 1, 2], [], 5) == [1, 2, 1, 2, 1]


def test_lookup_falls_back_to_the_input_sequences():
    assert lookup_draft([9, 3], [[1, 3, 4, 5, 6]], 3) == [4, 5, 6]
    assert lookup_draft([9, 3], [[1, 3]], 3) == []  # nothing followed the match
    assert lookup_draft([1, 2, 3], [[7, 8]], 4) == []
    assert lookup_draft([1, 1], [], 0) == [] and lookup_draft([], [[1, 2]], 3) == []


def test_causal_block_mask_lets_each_new_token_see_the_cache_and_earlier_new_tokens():
    mask = causal_block_mask(2, 3, torch.float32, torch.device("cpu"))[0, 0]
    assert mask.shape == (3, 5)
    allowed = mask == 0
    assert allowed.tolist() == [[True, True, True, False, False], [True, True, True, True, False], [True] * 5]


def test_draft_length_grows_on_success_and_backs_off_on_failure():
    length = DraftLength(8)
    assert length.next() == 4
    length.update(4, 4)
    assert length.next() == 8
    length.update(8, 3)
    assert length.next() == 3
    length.update(3, 0)  # all rejected: pause one pass, then guess one token
    assert [length.next(), length.next()] == [0, 1]
    length.update(1, 0)  # rejected again: pause two passes
    assert [length.next(), length.next(), length.next()] == [0, 0, 1]
    length.update(0, 0)  # a pass without guesses changes nothing
    assert length.next() == 1
    assert DraftLength(0).next() == 0


# ------------------------------------------------------------------------------------------
# Verification
# ------------------------------------------------------------------------------------------
def test_greedy_verification_keeps_the_common_matching_prefix():
    logits = torch.full((2, 4, 10), -5.0)
    best = torch.tensor([[1, 2, 3, 4], [1, 2, 9, 4]])
    logits.scatter_(-1, best[..., None], 5.0)
    drafts = torch.tensor([[1, 2, 3], [1, 2, 3]])
    none = torch.zeros(2, dtype=torch.bool)
    # Row 1 rejects the third guess: both rows keep two guesses plus the model's next token.
    assert verify(logits, drafts, none, 0.0).tolist() == [[1, 2, 3], [1, 2, 9]]
    # A finished row does not hold the others back.
    assert verify(logits, drafts, torch.tensor([False, True]), 0.0).tolist() == [[1, 2, 3, 4], [1, 2, 9, 4]]
    assert verify(logits[:, :1], drafts[:, :0], none, 0.0).tolist() == [[1], [1]]


@pytest.mark.parametrize("top_p", [0.0, 0.8])
def test_sampled_verification_draws_from_the_model_distribution(top_p):
    """Each token must follow the model's (filtered, tempered) distribution whatever the guess."""
    torch.manual_seed(0)
    n, vocab, temperature = 40000, 6, 0.7
    logits = torch.randn(1, 2, vocab).expand(n, 2, vocab).contiguous()
    drafts = torch.full((n, 1), 2)
    gen = torch.Generator().manual_seed(0)
    out = verify(logits, drafts, torch.zeros(n, dtype=torch.bool), temperature, 0, top_p, gen)
    assert out.shape == (n, 1)  # some row rejects the guess, so every row keeps none
    expected = (filter_logits(logits[0, 0], 0, top_p) / temperature).softmax(-1)
    observed = torch.bincount(out[:, 0], minlength=vocab).float() / n
    assert torch.allclose(observed, expected, atol=0.01), (observed, expected)


def test_sampled_verification_after_kept_guesses_draws_the_next_token_from_the_model():
    torch.manual_seed(1)
    n, vocab = 40000, 5
    sure = torch.tensor([0.0, 60.0, 0.0, 0.0, 0.0])  # the guess (token 1) has probability 1
    after = torch.randn(vocab)
    logits = torch.stack([sure, after])[None].expand(n, 2, vocab).contiguous()
    out = verify(logits, torch.ones(n, 1, dtype=torch.long), torch.zeros(n, dtype=torch.bool), 1.0,
                 generator=torch.Generator().manual_seed(0))
    assert out.shape == (n, 2) and (out[:, 0] == 1).all()
    observed = torch.bincount(out[:, 1], minlength=vocab).float() / n
    assert torch.allclose(observed, after.softmax(-1), atol=0.01), (observed, after.softmax(-1))


def test_sampled_verification_of_a_sure_guess_keeps_it():
    logits = torch.tensor([[[0.0, 50.0, 0.0], [0.0, 0.0, 50.0]]])
    out = verify(logits, torch.tensor([[1]]), torch.tensor([False]), 1.0, generator=torch.Generator().manual_seed(0))
    assert out.tolist() == [[1, 2]]


# ------------------------------------------------------------------------------------------
# In the sampler
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repetitive_model() -> FourM:
    """A random-init tiny model: its greedy captions repeat tokens, so guesses get accepted."""
    torch.manual_seed(0)
    mods = ["rgb@224", "caption"]
    return FourM(preset("tiny-swiglu_nobias", domains_in=mods, domains_out=mods[1:], dim=64, encoder_depth=2,
                        decoder_depth=2, num_heads=2)).eval()


@pytest.fixture
def passes(monkeypatch) -> list[tuple[int, int]]:
    """(guesses, tokens kept) of every verifying pass the sampler makes."""
    log: list[tuple[int, int]] = []
    original = speculative.verify

    def recording(logits, drafts, *args, **kwargs):
        out = original(logits, drafts, *args, **kwargs)
        log.append((drafts.shape[1], out.shape[1]))
        return out

    monkeypatch.setattr("open4m.generation.sampler.verify", recording)
    return log


@pytest.mark.parametrize("cfg", [1.0, 2.0])
def test_greedy_output_is_identical_with_and_without_guesses(repetitive_model, passes, cfg):
    rgb = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    schedule = build_schedule("rgb@224->caption", tokens=40, temps=0.0, cfg=cfg)
    plain = Sampler(repetitive_model, draft_tokens=0).generate({"rgb@224": rgb}, schedule)["caption"]
    assert all(guessed == 0 for guessed, _ in passes)
    passes.clear()
    fast = Sampler(repetitive_model).generate({"rgb@224": rgb}, schedule)["caption"]
    assert torch.equal(fast["tensor"], plain["tensor"]) and torch.equal(fast["input_mask"], plain["input_mask"])
    generated = sum(kept for _, kept in passes)
    assert len(passes) < generated  # guesses were accepted: fewer passes than tokens


def test_sampling_with_guesses_reproduces_per_seed(repetitive_model):
    rgb = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    schedule = build_schedule("rgb@224->caption", tokens=24, temps=0.5, top_k=20)
    sampler = Sampler(repetitive_model)

    def run(seed):
        return sampler.generate({"rgb@224": rgb}, schedule, generator=torch.Generator().manual_seed(seed))["caption"]["tensor"]

    assert torch.equal(run(1), run(1))


def test_draft_tokens_must_be_a_count(repetitive_model):
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="draft_tokens"):
            Sampler(repetitive_model, draft_tokens=bad)
