import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from open4m.tokenizers.sequences import (
    BODY_KEYPOINT_FLIP, BODY_KEYPOINT_NAMES, CODECS, Box, BoxCodec, CaptionCodec, HumanPose, HumanPoseCodec,
    KeypointsCodec, MetadataCodec, METADATA_FIELDS, OcrCodec, PaletteCodec, SamInstance, SamInstanceCodec, SamQuery,
    normalize_ocr_text,
)
from open4m.tokenizers.text import COCO_CLASSES, TextTokenizer

CORPUS = ["human pose global camera shape none point polygon", "a dog chasing a ball on the grass",
          "a zebra crossing", "two people eating pizza", "open cafe latte menu exit set 4m 12 3:50 v1 = 20 0123456789"] * 10


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.train(CORPUS, vocab_size=4400)


unit = st.floats(0, 1, allow_nan=False)
boxes = st.lists(st.builds(Box, unit, unit, unit, unit, st.sampled_from(COCO_CLASSES), st.floats(0.6, 1)), max_size=6)
codes = st.lists(st.integers(0, 1023), min_size=8, max_size=8).map(tuple)


def test_det_format_order_and_threshold():
    text = BoxCodec().to_text([Box(0.5, 0.5, 0.9, 0.9, "Dog"), Box(0.1, 0.0, 0.2, 1.0, "baseball bat"),
                               Box(0.0, 0.0, 1.0, 1.0, "cat", score=0.3)])
    assert text == "v0=100 v1=0 v2=200 v3=999 baseball bat v0=500 v1=500 v2=899 v3=899 dog"


@settings(max_examples=40, deadline=None)
@given(boxes)
def test_det_round_trip(bs):
    codec = BoxCodec()
    text = codec.to_text(bs)
    back = codec.from_text(text)
    assert codec.to_text(back) == text
    for b in back:
        assert b.class_name in COCO_CLASSES


def test_det_through_the_tokenizer(tok):
    codec = BoxCodec()
    bs = [Box(0.1, 0.2, 0.3, 0.4, "teddy bear"), Box(0.5, 0.5, 0.6, 0.7, "person")]
    ids = codec.encode(bs, tok)
    assert ids[:5].tolist() == [tok.value_id(0, 100), tok.value_id(1, 200), tok.value_id(2, 300),
                                tok.value_id(3, 400), tok.token_to_id("teddy bear")]
    back = codec.decode(ids, tok)
    assert [b.class_name for b in back] == ["teddy bear", "person"]
    assert back[0].xmin == pytest.approx(0.1, abs=1 / 999)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=1, max_size=7))
def test_palette_round_trip_is_exact(colors):
    codec = PaletteCodec()
    assert codec.from_text(codec.to_text(colors)) == colors


def test_palette_through_the_tokenizer(tok):
    codec = PaletteCodec()
    ids = codec.encode([(255, 0, 10)], tok)
    assert ids.tolist() == [tok.value_id(1, 1), tok.value_id(0, 255), tok.value_id(0, 0), tok.value_id(0, 10)]
    assert codec.decode(ids, tok) == [(255, 0, 10)]
    with pytest.raises(ValueError, match="1 to 7"):
        codec.to_text([(0, 0, 0)] * 8)


metadata = st.fixed_dictionaries({}, optional={f.name: st.floats(-10, 2000, allow_nan=False) for f in METADATA_FIELDS})


@settings(max_examples=60, deadline=None)
@given(metadata, st.integers(0, 3))
def test_metadata_round_trip(meta, seed):
    codec = MetadataCodec()
    text = codec.to_text(meta)
    back = codec.from_text(codec.to_text(meta, random.Random(seed)))  # shuffled order parses the same
    assert set(back) == set(meta)
    assert codec.to_text(back) == text


def test_metadata_values_and_errors():
    codec = MetadataCodec()
    assert codec.to_text({"original_width": 640, "brightness": 255.0, "aesthetic_score": 5.0}) == \
        "v1=0 v0=20 v1=10 v0=49 v1=20 v0=1"
    with pytest.raises(ValueError, match="unknown fields"):
        codec.to_text({"sharpness": 1.0})


def test_metadata_from_generated_text_keeps_every_readable_field():
    """A generation that drops its first token (seen on the world model) loses one field, not eleven;
    text a user writes is still read strictly."""
    codec = MetadataCodec()
    text = codec.to_text({"n_coco_instances": 3, "brightness": 100.0, "entropy": 5.0})
    dropped = text.split(" ", 1)[1]  # 'v0=3 v1=10 ...': the first field's name token is missing
    back = codec.read_generated(dropped)
    assert set(back) == {"brightness", "entropy"}
    assert back == {k: v for k, v in codec.from_text(text).items() if k != "n_coco_instances"}
    assert codec.read_generated("v1=7 v0=2 v1=7 v0=5") == {"n_coco_instances": 2.0}  # a repeated field keeps its first
    assert set(codec.read_generated("v1=99 v0=1 v1=13 v0=20")) == {"entropy"}  # an unknown field index is skipped
    with pytest.raises(ValueError, match="no 'v1=<field> v0=<value>' pair"):
        codec.read_generated("v0=1 v0=2 a b")
    with pytest.raises(ValueError, match="expected pairs"):
        codec.from_text(dropped)
    with pytest.raises(ValueError, match="expected v1=<n>, got 'bright'"):
        codec.from_text("v1=10 v0=20 bright v0=3")
