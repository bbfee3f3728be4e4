"""Fuzzing the sequence codecs with hypothesis: whatever a model generates (any token ids) and whatever a
label file holds (any JSON), decoding and encoding end in a value or in one of our own errors
(`Open4mError`, one line), never in a crash of another kind. Runs in a few seconds (modest example
counts, no deadline: the first call loads the tokenizer)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from open4m.errors import Open4mError
from open4m.tokenizers.sequences import CODECS
from open4m.tokenizers.text import TextTokenizer

from fuzzing import ours_or_value

TEXT = Path(__file__).resolve().parents[2] / "src" / "open4m" / "assets" / "world64" / "tokenizers" / "text.json"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
NAMES = sorted(CODECS)


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.from_pretrained(TEXT)


# Words of the codecs' formats, so random texts often come close to valid sequences.
WORDS = ["v0=1", "v1=999", "v2=0", "v3=500", "v0=1000", "v4=3", "v0=-1", "v1=", "=5", "color", "none", "human",
         "pose", "global", "camera", "shape", "point", "polygon", "dog", "[PAD]", "[EOS]", "[S_1]", "1", "7",
         "brightness", "crop_height", "nan", "inf", "", " ", "\x00", "é", "0.5"]
texts = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))


@FUZZ
@given(name=st.sampled_from(NAMES), text=texts)
def test_from_text_takes_any_text(name, text):
    ours_or_value(lambda: CODECS[name].from_text(text))


@FUZZ
@given(name=st.sampled_from(NAMES), ids=st.lists(st.integers(-5, 5000), max_size=80))
def test_decode_takes_any_token_ids(tok, name, ids):
    """What a model samples (any ids, in or out of the vocabulary) decodes or is refused with our error."""
    ours_or_value(lambda: CODECS[name].decode(ids, tok))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20)

# The keys each modality's JSON uses, so that garbage often has the right shape with wrong values.
KEYS = ["instances", "boxes", "class_name", "score", "caption", "box", "pose_codes", "global_orient", "camera", "betas",
        "point", "codes", "text", "keypoints", "name", "x", "y", "1", "3", "7", "brightness", "crop_height",
        "colorfulness", "original_width", "sam_instance_count"]
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 1100) | st.floats(-2, 2) | st.floats(allow_nan=True)
    | st.sampled_from(["dog", "", "a b", "v0=1"]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=30)


@FUZZ
@given(name=st.sampled_from(NAMES), value=st.one_of(JSON, SHAPED), seed=st.integers(0, 3))
def test_encode_takes_any_label_json(tok, name, value, seed):
    """A label file's JSON (any shape) through the loader's conversion and the codec: tokens or our error."""
    from open4m.data.sequence_inputs import sequence_input

    def run():
        data = sequence_input(name, value, random.Random(seed))
        ids = CODECS[name].encode(data, tok, random.Random(seed))
        assert all(0 <= int(i) < tok.vocab_size for i in ids)
        return ids

    ours_or_value(run)


@FUZZ
@given(name=st.sampled_from(["caption", "color_palette", "metadata", "keypoints", "ocr"]), value=st.one_of(JSON, SHAPED))
def test_to_text_takes_any_json_value(name, value):
    """The codecs whose input is the label JSON itself, given garbage directly: a string or our error. (det,
    human_poses and sam_instance take dataclasses: `sequence_input` builds them from JSON, fuzzed above.)"""
    result = ours_or_value(lambda: CODECS[name].to_text(value))
    assert isinstance(result, (str, Open4mError))


def test_fuzz_floats_are_not_silently_accepted(tok):
    """A NaN or infinite coordinate is refused (it would quantise to an arbitrary bin)."""
    from open4m.data.sequence_inputs import sequence_input

    for bad in (math.nan, math.inf):
        value = {"instances": [{"boxes": [0.1, 0.1, bad, 0.5], "class_name": "dog", "score": 1.0}]}
        with pytest.raises(Open4mError):
            CODECS["det"].encode(sequence_input("det", value), tok)
