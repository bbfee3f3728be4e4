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


def test_det_from_generated_text_keeps_every_well_formed_box():
    """A generation with one garbled box (a missing corner, a box without a name) keeps the boxes around it;
    text a user writes is still read strictly, and a generation with no box at all is still an error."""
    codec = BoxCodec()
    text = ("v0=172 v1=484 v2=297 v3=562 torus v1=265 v2=656 v3=468 cone v0=1 v1=2 v2=3 v3=4 "
            "v0=624 v1=359 v2=796 v3=562 traffic light v0=5")
    boxes = codec.read_generated(text)
    assert [b.class_name for b in boxes] == ["torus", "traffic light"]
    assert boxes[1].xmin == pytest.approx(624 / 999)
    with pytest.raises(ValueError, match="expected v0"):
        codec.from_text(text)
    with pytest.raises(ValueError, match="no class name"):
        codec.read_generated("v0=1 v1=2 v2=3 v3=4")
    assert codec.read_generated("") == [] and codec.read_generated(codec.to_text([Box(0, 0, 1, 1, "cat")]))[0].xmax == 1


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


# -- keypoints ----------------------------------------------------------------------------------
def _q(x: float) -> float:
    return round(min(max(x, 0.0), 1.0) * 999) / 999


def quantised_persons(persons, keep=2):
    """What KeypointsCodec must give back: corners and coordinates in 1000 bins, visibility in 3, largest first."""
    out = [{"box": [_q(c) for c in p["box"]],
            "keypoints": [[_q(x), _q(y), round(min(max(v, 0.0), 1.0) * 2) / 2] for x, y, v in p["keypoints"]]}
           for p in persons]
    q = lambda p: [round(c * 999) for c in p["box"]]  # noqa: E731
    out.sort(key=lambda p: (-(q(p)[2] - q(p)[0]) * (q(p)[3] - q(p)[1]), q(p)))
    return out[:keep]


point = st.tuples(st.floats(-0.2, 1.2), st.floats(-0.2, 1.2), unit).map(list)
person = st.fixed_dictionaries({"box": st.tuples(unit, unit, unit, unit).map(list),
                                "keypoints": st.lists(point, min_size=33, max_size=33)})


@settings(max_examples=40, deadline=None)
@given(st.lists(person, max_size=4, unique_by=lambda p: tuple(round(c * 999) for c in p["box"])))
def test_keypoints_round_trip_is_exact_after_quantisation(persons):
    codec = KeypointsCodec()
    text = codec.to_text(persons)
    back = codec.from_text(text)
    assert back == quantised_persons(persons)
    assert codec.to_text(back) == text
    assert len(text.split()) == (104 * len(back) if back else 1)


def test_keypoints_format_and_budget():
    codec = KeypointsCodec()
    assert codec.tokens_per_person == 5 + 3 * 33 and codec.max_persons == 2  # 256 tokens, [EOS] included
    assert codec.to_text([]) == "none" and codec.from_text("none") == []
    small = {"box": [0.1, 0.1, 0.2, 0.2], "keypoints": [[0.15, 0.15, 1.0]] * 33}
    big = {"box": [0.0, 0.0, 0.9, 1.0], "keypoints": [[0.5, 0.5, 0.2]] * 33}
    words = codec.to_text([small, big]).split()
    assert words[:8] == ["person", "v0=0", "v1=0", "v2=899", "v3=999", "v0=500", "v1=500", "v2=0"]
    assert words[104:109] == ["person", "v0=100", "v1=100", "v2=200", "v3=200"]
    assert len(codec.from_text(codec.to_text([small, big, small]))) == 2  # the third does not fit 256 tokens
    assert len(KeypointsCodec(max_tokens=105).from_text(KeypointsCodec(max_tokens=105).to_text([small, big]))) == 1


def test_keypoints_through_the_tokenizer(tok):
    codec = KeypointsCodec()
    persons = [{"box": [0.1, 0.2, 0.6, 1.0], "keypoints": [[i / 40, 1 - i / 40, (i % 3) / 2] for i in range(33)]},
               {"box": [0.5, 0.0, 1.0, 0.7], "keypoints": [[0.9, 0.1, 0.97]] * 33}]
    ids = codec.encode(persons, tok)
    assert ids[0].item() == tok.token_to_id("person") and len(ids) == 2 * 104 <= 255
    assert ids[1:5].tolist() == [tok.value_id(0, 100), tok.value_id(1, 200), tok.value_id(2, 599), tok.value_id(3, 999)]
    assert codec.decode(ids, tok) == quantised_persons(persons)
    assert codec.decode(codec.encode([], tok), tok) == []


def test_keypoint_names_and_flip():
    assert len(BODY_KEYPOINT_NAMES) == 33 and BODY_KEYPOINT_NAMES[11] == "left_shoulder"
    assert BODY_KEYPOINT_NAMES[BODY_KEYPOINT_FLIP[11]] == "right_shoulder"
    assert BODY_KEYPOINT_FLIP[0] == 0 and all(BODY_KEYPOINT_FLIP[j] == i for i, j in enumerate(BODY_KEYPOINT_FLIP))


# -- ocr ----------------------------------------------------------------------------------------
words = st.lists(st.sampled_from(["open", "cafe", "latte", "menu", "exit", "dog", "zebra", "4m", "12"]),
                 min_size=1, max_size=3).map(" ".join)
line = st.fixed_dictionaries({"box": st.tuples(unit, unit, unit, unit).map(list), "text": words,
                              "score": st.floats(0.7, 1)})


def quantised_lines(lines):
    """What OcrCodec must give back: boxes in 1000 bins, text as written, reading order, no score."""
    out = [{"box": [_q(c) for c in b["box"]], "text": normalize_ocr_text(b["text"])} for b in lines]
    out.sort(key=lambda b: ([round(b["box"][i] * 999) for i in (1, 0, 3, 2)], b["text"]))
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(line, max_size=5))
def test_ocr_round_trip_is_exact_after_quantisation(lines):
    codec = OcrCodec()
    text = codec.to_text(lines)
    assert codec.from_text(text) == quantised_lines(lines)
    assert codec.to_text(codec.from_text(text)) == text


@settings(max_examples=25, deadline=None)
@given(st.lists(line, max_size=5))
def test_ocr_through_the_tokenizer_is_exact(tok, lines):
    codec = OcrCodec()
    assert codec.decode(codec.encode(lines, tok), tok) == quantised_lines(lines)


def test_ocr_text_normalisation_and_threshold(tok):
    codec = OcrCodec()
    lines = [{"box": [0.5, 0.8, 0.77, 0.88], "text": "Latte  3:50", "score": 0.98},
             {"box": [0.09, 0.1, 0.58, 0.19], "text": "OPEN 4M CAFE", "score": 0.93},
             {"box": [0.0, 0.0, 0.1, 0.1], "text": "O", "score": 0.54},  # under the threshold (0.7)
             {"box": [0.2, 0.5, 0.3, 0.6], "text": "set v1=20", "score": 0.9}]
    text = codec.to_text(lines)
    assert text == "v0=90 v1=100 v2=579 v3=190 open 4m cafe v0=200 v1=500 v2=300 v3=599 set v1 =20 " \
                   "v0=500 v1=799 v2=769 v3=879 latte 3:50"
    back = codec.decode(codec.encode(lines, tok), tok)  # the WordPiece normaliser splits punctuation off
    assert [b["text"] for b in back] == ["open 4m cafe", "set v1 = 20", "latte 3 : 50"]
    assert codec.decode(codec.encode(back, tok), tok) == back  # stable after one pass
    assert codec.from_text(codec.to_text([{"box": [0, 0, 1, 1], "text": "日本"}])) == [
        {"box": [0.0, 0.0, 1.0, 1.0], "text": "日本"}]
    unknown = codec.decode(codec.encode([{"box": [0, 0, 1, 1], "text": "日本"}], tok), tok)
    assert codec.decode(codec.encode(unknown, tok), tok) == unknown


def test_ocr_budget_cuts_between_boxes(tok):
    lines = [{"box": [0.0, i / 10, 0.5, i / 10 + 0.05], "text": "open cafe menu"} for i in range(10)]
    per_box = len(tok.encode(OcrCodec().to_text(lines[:1])))
    assert per_box >= 7
    ids = OcrCodec(max_tokens=2 * per_box + 2).encode(lines, tok)  # room for two boxes and a bit, not three
    assert len(ids) == 2 * per_box
    assert OcrCodec().decode(ids, tok) == quantised_lines(lines[:2])
    assert len(OcrCodec().encode(lines, tok)) == 10 * per_box


@pytest.mark.parametrize("codec,text,match", [
    (KeypointsCodec(), "person v0=1 v1=2 v2=3 v3=4 v0=5", "keypoint"),
    (KeypointsCodec(), "human v0=1", "expected 'person'"),
    (OcrCodec(), "v0=1 v1=2 v2=3 v3=4", "no text"),
    (OcrCodec(), "v0=1 v1=2 exit", "ocr"),
])
def test_malformed_keypoints_and_ocr_give_clear_errors(codec, text, match):
    with pytest.raises(ValueError, match=match):
        codec.from_text(text)


def test_keypoints_and_ocr_codecs_are_registered():
    assert isinstance(CODECS["keypoints"], KeypointsCodec) and isinstance(CODECS["ocr"], OcrCodec)


def test_palette_from_generated_text_keeps_the_first_complete_palette():
    codec = PaletteCodec()
    text = codec.to_text([(156, 167, 174), (63, 64, 66), (199, 214, 237), (67, 22, 5)])
    runs_on = text + " v1=4 v0=67 v0=22"  # what the world model wrote past its palette's end
    assert codec.read_generated(runs_on) == codec.from_text(text)
    with pytest.raises(ValueError, match="expected v0=<n>, got 'v1=4'"):
        codec.from_text(runs_on)  # text a user writes is read strictly
    # a palette that stopped early keeps its complete colours; a repeated header is skipped
    assert codec.read_generated("v1=4 v0=167 v0=148 v0=134 v0=84 v0=76 v0=83 v0=23 v0=87") == [(167, 148, 134),
                                                                                              (84, 76, 83)]
    assert codec.read_generated("v1=2 v1=2 v0=79 v0=87 v0=163 v0=1 v0=2 v0=3 v0=4") == [(79, 87, 163), (1, 2, 3)]
    with pytest.raises(ValueError, match="header says 4 colours"):
        codec.read_generated("v1=4 v0=1 v0=2")  # not one complete colour is still an error
    with pytest.raises(ValueError, match="expected v1=<n>"):
        codec.read_generated("v0=1 v0=2 v0=3")  # nor is a palette without its header
    # a channel over 255 (a value token no colour has; a weak model writes them) is no colour: skipped when
    # generated, refused when written
    assert codec.read_generated("v1=2 v0=309 v0=2 v0=3 v0=4 v0=5 v0=6") == [(4, 5, 6)]
    for read in (codec.read_generated, codec.from_text):  # with no colour left, the error says why
        with pytest.raises(ValueError, match=r"colours are \(r, g, b\) in 0..255, got \(309, 2, 3\)"):
            read("v1=1 v0=309 v0=2 v0=3")
