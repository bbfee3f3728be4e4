import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from open4m.tokenizers.sequences import (
    CODECS, Box, BoxCodec, CaptionCodec, HumanPose, HumanPoseCodec, MetadataCodec, METADATA_FIELDS, PaletteCodec,
    SamInstance, SamInstanceCodec, SamQuery,
)
from open4m.tokenizers.text import COCO_CLASSES, TextTokenizer

CORPUS = ["human pose global camera shape none point polygon", "a dog chasing a ball on the grass",
          "a zebra crossing", "two people eating pizza"] * 10


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


poses = st.lists(st.builds(
    HumanPose, st.tuples(unit, unit, unit, unit), codes,
    st.tuples(*[st.floats(-1, 1)] * 9), st.tuples(*[st.floats(-1, 19)] * 3), st.tuples(*[st.floats(-3, 3)] * 10),
), max_size=3)


@settings(max_examples=30, deadline=None)
@given(poses, st.integers(0, 5))
def test_human_poses_round_trip(humans, seed):
    codec = HumanPoseCodec()
    shuffled = codec.to_text(humans, random.Random(seed))
    back = codec.from_text(shuffled)
    assert codec.to_text(back) == codec.to_text(humans)
    assert [h.pose_codes for h in back] == [h.pose_codes for h in humans]
    if humans:
        assert len(shuffled.split()) == 39 * len(humans)


def test_human_poses_through_the_tokenizer(tok):
    codec = HumanPoseCodec()
    h = HumanPose((0.1, 0.2, 0.3, 0.4), (0, 511, 512, 1023, 5, 6, 7, 8), (0.0,) * 9, (1.0, 0.0, 2.0), (0.5,) * 10)
    assert codec.decode(codec.encode([h], tok), tok)[0].pose_codes == h.pose_codes
    assert codec.decode(codec.encode([], tok), tok) == []


sam = st.lists(st.builds(
    SamQuery, st.tuples(st.integers(0, 223), st.integers(0, 223)),
    st.lists(st.builds(SamInstance, st.tuples(*[st.integers(0, 223)] * 4),
                       st.lists(st.integers(0, 1023), min_size=16, max_size=16).map(tuple)), max_size=2).map(tuple),
), max_size=4)


@settings(max_examples=30, deadline=None)
@given(sam)
def test_sam_round_trip_is_exact(queries):
    codec = SamInstanceCodec()
    assert codec.from_text(codec.to_text(queries)) == queries


def test_sam_through_the_tokenizer(tok):
    codec = SamInstanceCodec()
    q = [SamQuery((10, 20), (SamInstance((1, 2, 3, 4), tuple(range(0, 1024, 64))),)), SamQuery((5, 6))]
    assert codec.decode(codec.encode(q, tok), tok) == q


def test_caption_round_trip(tok):
    codec = CaptionCodec()
    assert codec.decode(codec.encode("A dog chasing a ball", tok), tok) == "a dog chasing a ball"


@pytest.mark.parametrize("text,match", [("v0=1 v1=2", "det"), ("v1=2 v0=1", "header says"),
                                        ("human v0=1", "human box"), ("point v1=3", "sam point")])
def test_malformed_sequences_give_clear_errors(text, match):
    codec = {"det": BoxCodec(), "header says": PaletteCodec(), "human box": HumanPoseCodec(),
             "sam point": SamInstanceCodec()}[match]
    with pytest.raises(ValueError, match=match):
        codec.from_text(text)


def test_codec_registry_covers_the_sequence_modalities():
    official = {"caption", "det", "color_palette", "metadata", "human_poses", "sam_instance"}
    assert set(CODECS) == official | {"keypoints", "ocr"}  # open4m's own labeller formats
