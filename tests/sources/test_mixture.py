"""One weighted mixture: map-style and exactly resumable when every part is, a stream otherwise."""

import itertools

import pytest

from open4m.data.batches import batch_loader, build_masker
from open4m.sources import build_source, build_sources
from open4m.sources.mixture import MapMixture, StreamMixture, mixture
from open4m.sources.synthetic import SyntheticTokens


def _parts():
    return SyntheticTokens(["tok_rgb@224", "caption"], 10, seed=1), SyntheticTokens(["caption"], 30, seed=2)


def test_map_mixture_is_a_pure_function_of_the_index():
    a, b = _parts()
    mix = mixture([a, b], [3.0, 1.0], seed=0)
    assert isinstance(mix, MapMixture) and len(mix) == 40
    first = [repr(mix[k]) for k in range(40)]
    assert [repr(mix[k]) for k in reversed(range(40))] == first[::-1]  # any order, same items
    assert all(("tok_rgb@224" in mix[k]) == (mix[k]["__source__"] == 0) for k in range(40))
    image_share = sum("tok_rgb@224" in mix[k] for k in range(40)) / 40
    assert 0.55 < image_share < 0.95  # weight 3:1
    with pytest.raises(ValueError, match="one weight per source"):
        mixture([a, b], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        mixture([a, b], [1.0, -1.0])


class _Stream:
    """A stream part (no indexing)."""

    def __iter__(self):
        return iter([{"caption": [1000 + i]} for i in range(3)])


def test_a_stream_part_makes_a_seeded_endless_stream():
    a, _ = _parts()
    mix = mixture([a, _Stream()], [1.0, 1.0], seed=0)
    assert isinstance(mix, StreamMixture) and mix.splits_by_rank
    draws = list(itertools.islice(mix, 200))
    again = list(itertools.islice(mixture([a, _Stream()], [1.0, 1.0], seed=0), 200))
    assert repr(draws) == repr(again)  # seeded
    share = sum(d["__source__"] == 1 for d in draws) / len(draws)
    assert 0.35 < share < 0.65
    assert all(set(d) == {"caption", "__source__"} for d in draws if d["__source__"] == 1)  # restarted, not starved


def test_recipe_entries_build_their_parts_with_their_own_modalities():
    names = ["tok_rgb@224", "caption"]
    entries = [{"source": "synthetic", "weight": 3}, {"source": "synthetic", "weight": 1, "modalities": ["caption"],
                                                      "num_samples": 7}]
    mix = build_sources(entries, names, num_samples=5, seed=4)
    assert isinstance(mix, MapMixture) and len(mix) == 12
    assert set(mix.sources[1][0]) == {"caption"} and mix.sources[1].seed == 5  # part i: seed + i
    assert repr(build_source(entries, names, num_samples=5, seed=4)[3]) == repr(mix[3])
    masker = build_masker("symmetric", names, input_tokens=8, target_tokens=8, allow_missing=True)
    batch = next(batch_loader(mix, masker, 4, seed=0))
    assert batch["caption"]["tensor"].shape[0] == 4
    with pytest.raises(ValueError, match="unknown keys \\['wieght'\\]"):
        build_sources([{"source": "synthetic", "wieght": 1}], names)
    with pytest.raises(ValueError, match="data.modalities lacks"):
        build_sources([{"source": "synthetic", "modalities": ["tok_depth@224"]}], names)
