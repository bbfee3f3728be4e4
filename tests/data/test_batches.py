"""Masked micro-batches from any source: order, ranks, accumulation, workers and resume (`open4m.data.batches`)."""

import numpy as np
import pytest
import torch

from open4m.data.batches import MaskedBatches, StreamBatches, batch_loader, build_masker, sample_batches
from open4m.data.masking import collate
from open4m.errors import DataError
from open4m.sources.synthetic import SyntheticTokens

MODS = ["rgb@224", "tok_rgb@224", "tok_semseg@224", "caption", "det"]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[m][k], b[m][k]) for m in a for k in a[m])


@pytest.fixture(scope="module")
def masker():
    return build_masker("symmetric", MODS, input_tokens=24, target_tokens=24)


def test_batches_do_not_depend_on_workers(masker):
    src = SyntheticTokens(MODS, 12)
    plain = batch_loader(src, masker, 4, seed=1, stop=4)
    workers = batch_loader(src, masker, 4, seed=1, start=2, stop=4, num_workers=2)
    batches = list(plain)
    assert len(batches) == 4
    for a, b in zip(batches[2:], workers):
        assert _equal(a, b)
    assert not _equal(batches[0], batches[1])


def test_two_ranks_see_what_accumulation_sees(masker):
    src = SyntheticTokens(MODS, 40)
    accum = MaskedBatches(src, masker, 3, seed=0, accum=2)
    ranks = [MaskedBatches(src, masker, 3, seed=0, rank=r, world=2) for r in range(2)]
    for step in range(3):
        assert _equal(accum[2 * step], ranks[0][step])
        assert _equal(accum[2 * step + 1], ranks[1][step])
    seen = [g for k in range(6) for g in accum.positions(k)]
    assert seen == list(range(18))


def test_epochs_reshuffle(masker):
    src = SyntheticTokens(MODS, 6)
    batches = MaskedBatches(src, masker, 6, seed=0)
    order = [batches._index(e, p) for e in range(2) for p in range(6)]
    assert sorted(order[:6]) == sorted(order[6:]) == list(range(6))
    assert order[:6] != order[6:]


def test_stream_resume_replays_to_the_same_batches(masker):
    samples = [SyntheticTokens(MODS, 12)[i] for i in range(12)]
    full = list(StreamBatches(samples, masker, 3, seed=0, stop=4))
    later = list(StreamBatches(samples, masker, 3, seed=0, start=2, stop=4))
    assert len(full) == 4 and len(later) == 2
    assert all(_equal(a, b) for a, b in zip(full[2:], later))
    rank1 = list(StreamBatches(samples, masker, 3, seed=0, rank=1, world=2, stop=2))
    assert len(rank1) == 2
    rows = [s["tok_rgb@224"] for s in samples[3:6]]  # rank 1 takes the second piece of 3 samples
    assert torch.equal(rank1[0]["tok_rgb@224"]["tensor"], torch.stack(rows))


class _EpochStream:
    """A stream of 4 samples per pass that records the epochs it is told and marks its samples with them."""

    def __init__(self) -> None:
        self.epochs, self.epoch = [], 0

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)
        self.epoch = epoch

    def __iter__(self):
        for i in range(4):
            yield {"x": torch.tensor([i + 10 * self.epoch])}


def test_a_stream_is_read_pass_after_pass_with_its_epoch_set_and_resumes_across_passes(masker):
    stream = _EpochStream()
    batches = [b["x"].flatten().tolist() for b in StreamBatches(stream, None, 2, seed=0, stop=5)]
    assert batches == [[0, 1], [2, 3], [10, 11], [12, 13], [20, 21]] and stream.epochs == [0, 1, 2]
    resumed = [b["x"].flatten().tolist() for b in StreamBatches(_EpochStream(), None, 2, seed=0, start=3, stop=5)]
    assert resumed == batches[3:]
    samples = [SyntheticTokens(MODS, 4)[i] for i in range(4)]  # a list: read again on every pass
    masked = list(StreamBatches(samples, masker, 2, seed=0, stop=3))
    assert not _equal(masked[0], masked[2])  # the same samples on pass 1 are masked anew


def test_a_stream_that_cannot_restart_is_a_clear_error(masker):
    one_shot = iter([SyntheticTokens(MODS, 2)[i] for i in range(2)])
    with pytest.raises(DataError, match="ended after one pass .* can be iterated again"):
        list(StreamBatches(one_shot, None, 1, seed=0, stop=5))
    with pytest.raises(DataError, match="gave no samples"):
        list(StreamBatches([], None, 1, seed=0, stop=1))


def test_official_mixture_needs_its_modalities():
    with pytest.raises(ValueError, match="lacks"):
        build_masker("4m-7", ["tok_rgb@224"])
    with pytest.raises(ValueError, match="unknown mixture"):
        build_masker("4m-8", ["tok_rgb@224"])


@pytest.mark.parametrize("rgb_share, low, high", [(0.5, 44, 84), (0.85, 92, 124)])
def test_rgb_to_all_mixture_a_share_of_the_samples_see_only_pixels(rgb_share, low, high):
    names = ["rgb@224", "tok_rgb@224", "tok_depth@224", "caption"]
    masker = build_masker("rgb-to-all", names, input_tokens=32, target_tokens=32, rgb_share=rgb_share)
    source = SyntheticTokens(names, 128, seed=0)
    only_pixels = 0
    for i in range(128):
        sample = masker(source[i], np.random.default_rng(i))
        visible = {m for m, d in sample.items() if (~d["input_mask"]).any()}
        assert not (~sample["rgb@224"]["target_mask"]).any()  # raw pixels are never a target
        only_pixels += visible == {"rgb@224"}
    assert low < only_pixels < high  # the rgb-to-all component's share (binomial, n=128, +-3.5 sigma)
    with pytest.raises(ValueError, match="exactly one raw-pixel modality"):
        build_masker("rgb-to-all", ["tok_rgb@224", "caption"])


def test_rgb_share_is_checked():
    names = ["rgb@224", "tok_rgb@224", "caption"]
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            build_masker("rgb-to-all", names, rgb_share=bad)
    with pytest.raises(ValueError, match="has none"):
        build_masker("symmetric", names, rgb_share=0.7)


@pytest.mark.parametrize("mixture", ["symmetric", "rgb-to-all"])
def test_target_alphas_give_a_modality_more_of_the_target_budget(mixture):
    names = ["rgb@224", "tok_rgb@224", "tok_depth@224", "tok_semseg@224", "caption"]
    source = SyntheticTokens(names, 200, seed=0)

    def semseg_share(masker):
        picked = [(~masker(source[i], np.random.default_rng(i))["tok_semseg@224"]["target_mask"]).sum() for i in range(200)]
        return float(np.mean(picked)) / 32

    plain = build_masker(mixture, names, input_tokens=32, target_tokens=32)
    weighted = build_masker(mixture, names, input_tokens=32, target_tokens=32, target_alphas={"tok_semseg@224": 2.0})
    assert semseg_share(weighted) > 1.5 * semseg_share(plain)  # alpha 2 vs 0.5 among four targets: ~0.57 vs 0.25


def test_target_alphas_are_checked():
    names = ["rgb@224", "tok_rgb@224", "caption"]
    with pytest.raises(ValueError, match="lacks"):
        build_masker("symmetric", names, target_alphas={"tok_semseg@224": 1.0})
    with pytest.raises(ValueError, match="> 0"):
        build_masker("symmetric", names, target_alphas={"caption": 0})
    with pytest.raises(ValueError, match="fixes its own"):
        build_masker("4m-7", ["rgb@224"], target_alphas={"rgb@224": 1.0})


def test_biased_shares_add_samples_whose_input_is_the_whole_caption():
    names = ["rgb@224", "tok_rgb@224", "tok_depth@224", "caption"]
    source = SyntheticTokens(names, 200, seed=0)

    def caption_led(masker):  # the whole caption shown, most of the input, and no caption target
        count = 0
        for i in range(200):
            sample = masker(source[i], np.random.default_rng(i))
            shown = {m: int((~d["input_mask"]).sum()) for m, d in sample.items()}
            whole = shown["caption"] >= len(source[i]["caption"])
            count += bool(whole and shown["caption"] >= 0.8 * sum(shown.values())
                          and (~sample["caption"]["target_mask"]).sum() == 0)
        return count

    plain = build_masker("rgb-to-all", names, input_tokens=32, target_tokens=32)
    biased = build_masker("rgb-to-all", names, input_tokens=32, target_tokens=32, rgb_share=0.4,
                          biased_shares={"caption": 0.4})
    assert caption_led(biased) > caption_led(plain) + 40  # 0.4 of 200 samples against a few by chance


def test_a_joined_biased_share_leads_with_both_modalities_together():
    names = ["rgb@224", "tok_rgb@224", "tok_depth@224", "tok_semseg@224", "caption"]
    source = SyntheticTokens(names, 200, seed=0)

    def led_by_depth_and_caption(masker):  # the whole caption and depth shown, nothing else, neither a target
        count = 0
        for i in range(200):
            sample = masker(source[i], np.random.default_rng(i))
            shown = {m: int((~d["input_mask"]).sum()) for m, d in sample.items()}
            targets = {m: int((~d["target_mask"]).sum()) for m, d in sample.items()}
            count += bool(shown["caption"] >= len(source[i]["caption"]) and shown["tok_depth@224"] > 0
                          and shown["caption"] + shown["tok_depth@224"] >= 0.9 * sum(shown.values())
                          and targets["caption"] == targets["tok_depth@224"] == 0 and targets["tok_rgb@224"] > 0)
        return count

    plain = build_masker("rgb-to-all", names, input_tokens=48, target_tokens=32)
    biased = build_masker("rgb-to-all", names, input_tokens=48, target_tokens=32, rgb_share=0.4,
                          biased_shares={"tok_depth@224+caption": 0.4})
    assert led_by_depth_and_caption(biased) > led_by_depth_and_caption(plain) + 40


def test_biased_input_alphas_show_part_of_a_modality_beside_the_leading_caption():
    names = ["rgb@224", "tok_rgb@224", "tok_depth@224", "caption"]
    source = SyntheticTokens(names, 200, seed=0)

    def rgb_in_caption_led(masker):  # per caption-led sample: RGB tokens shown, RGB tokens asked for
        rows = []
        for i in range(200):
            sample = masker(source[i], np.random.default_rng(i))
            shown = {m: int((~d["input_mask"]).sum()) for m, d in sample.items()}
            if shown["caption"] >= len(source[i]["caption"]) and shown["rgb@224"] == 0 \
                    and (~sample["caption"]["target_mask"]).sum() == 0:
                rows.append((shown["tok_rgb@224"], int((~sample["tok_rgb@224"]["target_mask"]).sum())))
        return np.array(rows)

    options = dict(input_tokens=64, target_tokens=64, rgb_share=0.3, biased_shares={"caption": 0.5})
    plain = rgb_in_caption_led(build_masker("rgb-to-all", names, **options))
    shown = rgb_in_caption_led(build_masker("rgb-to-all", names, biased_input_alphas={"tok_rgb@224": 2.0}, **options))
    assert len(plain) > 60 and len(shown) > 60
    assert (plain[:, 0] == 0).mean() > 0.7  # the caption alone, as 4M's caption-biased part
    assert (shown[:, 0] > 0).mean() > 0.9 and np.median(shown[:, 0]) > 10  # a part of the RGB grid shown
    assert (shown[:, 1] > 0).mean() > 0.9  # and the rest still asked for
    seen_and_asked = [(~sample["tok_rgb@224"]["input_mask"] & ~sample["tok_rgb@224"]["target_mask"]).sum()
                      for sample in (build_masker("rgb-to-all", names, biased_input_alphas={"tok_rgb@224": 2.0},
                                                  **options)(source[i], np.random.default_rng(i)) for i in range(50))]
    assert sum(int(x) for x in seen_and_asked) == 0  # no token is both shown and a target


@pytest.mark.parametrize("mixture, options, match", [
    ("rgb-to-all", {"biased_shares": {"tok_depth@224": 0.2}}, "lack"),
    ("rgb-to-all", {"biased_shares": {"caption+tok_depth@224": 0.2}}, "lack"),
    ("rgb-to-all", {"biased_shares": {"caption+caption": 0.2}}, "twice"),
    ("rgb-to-all", {"biased_shares": {"tok_rgb@224+rgb@224": 0.2}}, "raw-pixel"),
    ("rgb-to-all", {"biased_shares": {"rgb@224": 0.2}}, "raw-pixel"),
    ("rgb-to-all", {"rgb_share": 0.7, "biased_shares": {"caption": 0.3}}, "no all-to-all"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.0}}, "strictly between"),
    ("rgb-to-all", {"biased_shares": {"caption": "0.2"}}, "a number"),
    ("rgb-to-all", {"biased_shares": ["caption"]}, "map a modality"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "target_only": ["caption"]}, "target_only"),
    ("symmetric", {"biased_shares": {"caption": 0.2}}, "has its own"),
    ("rgb-to-all", {"biased_input_alphas": {"tok_rgb@224": 1.0}}, "adds none"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "biased_input_alphas": {"tok_depth@224": 1.0}}, "lack"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "biased_input_alphas": {"rgb@224": 1.0}}, "raw-pixel"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "biased_input_alphas": {"caption": 1.0}}, "already leads"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "biased_input_alphas": {"tok_rgb@224": 0}}, "> 0"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "biased_input_alphas": ["tok_rgb@224"]}, "map a modality"),
    ("rgb-to-all", {"biased_shares": {"caption": 0.2}, "biased_input_alphas": {"tok_rgb@224": 1.0},
                    "target_only": ["tok_rgb@224"]}, "target_only"),
    ("symmetric", {"biased_input_alphas": {"tok_rgb@224": 1.0}}, "has none"),
])
def test_biased_shares_are_checked(mixture, options, match):
    with pytest.raises(ValueError, match=match):
        build_masker(mixture, ["rgb@224", "tok_rgb@224", "caption"], **options)


def test_caption_only_samples_mix_with_full_ones_in_one_batch():
    names = ["rgb@224", "tok_rgb@224", "caption"]
    masker = build_masker("rgb-to-all", names, input_tokens=24, target_tokens=24, allow_missing=True)
    full = SyntheticTokens(names, 4, seed=0)
    text = SyntheticTokens(["caption"], 4, seed=1)
    samples = [masker(full[i], np.random.default_rng(i)) for i in range(2)]
    samples += [masker(text[i], np.random.default_rng(10 + i)) for i in range(2)]
    batch = collate(samples)
    hidden = batch["tok_rgb@224"]["input_mask"] & batch["tok_rgb@224"]["target_mask"]
    assert hidden[2:].all() and not hidden[:2].all()  # the caption-only rows never show or predict image tokens
    caption_used = ~(batch["caption"]["input_mask"] & batch["caption"]["target_mask"])
    assert caption_used[2:].any(dim=1).all()  # ... but do learn from their captions
    full_again = masker(full[0], np.random.default_rng(0))
    strict = build_masker("rgb-to-all", names, input_tokens=24, target_tokens=24)(full[0], np.random.default_rng(0))
    assert all(torch.equal(full_again[m][k], strict[m][k]) for m in names for k in strict[m])  # complete samples: same
    with pytest.raises(ValueError, match="allow_missing=True"):
        build_masker("symmetric", names)(text[0], np.random.default_rng(0))


def test_unmasked_batches_stack_samples_in_the_same_order():
    """Tokenizer training: batches of plain tensors, a pure function of (seed, k) like masked ones."""
    images = [torch.full((1, 4, 4), float(i)) for i in range(10)]
    plain = list(sample_batches(images, 3, seed=5, stop=4))
    assert [b.shape for b in plain] == [(3, 1, 4, 4)] * 4
    firsts = [int(b[j, 0, 0, 0]) for b in plain[:3] for j in range(3)]
    assert sorted(firsts) == sorted(set(firsts))  # an epoch permutation: no repeats within the first 9
    resumed = list(sample_batches(images, 3, seed=5, start=2, stop=4, num_workers=2))
    assert all(torch.equal(a, b) for a, b in zip(plain[2:], resumed))
