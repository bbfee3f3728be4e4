"""Detection confidence and runner-up classes from the generated tokens' probabilities."""

from __future__ import annotations

import math

import pytest

from open4m.generation.confidence import scored_boxes
from open4m.generation.sampler import TokenScores
from open4m.tokenizers import TextTokenizer
from open4m.tokenizers.sequences import BoxCodec


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer.train(["a dog and a cat near a traffic light", "a big sandcastle"] * 5, vocab_size=4400)


def _scores(tok: TextTokenizer, text: str, logprob: float, choices: dict[int, list[tuple[str, float]]]) -> TokenScores:
    """Scores of `text` generated with every token at `logprob`; `choices` gives some positions' runner-ups."""
    ids = tok.encode(text).tolist() + [tok.eos_id]
    top = [[(t, logprob)] + [(tok.encode(w).tolist()[0], lp) for w, lp in choices.get(i, [])] for i, t in enumerate(ids)]
    return TokenScores(ids, [logprob] * len(ids), top)


def test_boxes_get_class_times_coordinate_probability_and_one_token_runner_ups(tok):
    text = "v0=10 v1=20 v2=300 v3=400 dog v0=500 v1=500 v2=900 v3=950 traffic light"
    boxes = BoxCodec().from_text(text)
    # the first class token sits after four values; "cat" is a runner-up, a word piece and a value are not
    scores = _scores(tok, text, math.log(0.5), {4: [("cat", math.log(0.25)), ("v0=3", math.log(0.1))]})
    out = scored_boxes(boxes, scores, tok)
    assert [b.class_name for b in out] == ["dog", "traffic light"]
    assert out[0].confidence == pytest.approx(0.5 * 0.5)  # class 0.5 x geometric mean of the corners 0.5
    assert out[0].alternatives == (("cat", pytest.approx(0.25 * 0.5)),)
    assert (out[0].xmin, out[0].ymax) == (boxes[0].xmin, boxes[0].ymax)
    assert out[1].confidence == pytest.approx(0.5 * 0.5)  # "traffic light" is one COCO token


def test_multi_token_class_names_multiply_and_offer_no_runner_ups(tok):
    text = "v0=10 v1=20 v2=300 v3=400 big sandcastle"
    pieces = tok.tokens("big sandcastle")
    assert len(pieces) > 1, pieces  # the test needs a name of several tokens
    out = scored_boxes(BoxCodec().from_text(text), _scores(tok, text, math.log(0.5), {4: [("cat", -1.0)]}), tok)
    assert out[0].confidence == pytest.approx(0.5 ** len(pieces) * 0.5)
    assert out[0].alternatives == ()


def test_a_garbled_box_is_skipped_in_the_tokens_as_in_the_text(tok):
    text = "v0=10 v1=20 v2=300 v3=400 dog v1=3 v2=4 v3=5 cat v0=500 v1=500 v2=900 v3=950 cat"
    boxes = BoxCodec().read_generated(text)
    out = scored_boxes(boxes, _scores(tok, text, math.log(0.5), {}), tok)
    assert [b.class_name for b in out] == ["dog", "cat"] and all(b.confidence == pytest.approx(0.25) for b in out)


def test_tokens_that_do_not_line_up_leave_the_boxes_unscored(tok):
    boxes = BoxCodec().from_text("v0=10 v1=20 v2=300 v3=400 dog")
    other = _scores(tok, "v0=10 v1=20 v2=300 v3=400 dog v0=1 v1=2 v2=3 v3=4 cat", -0.1, {})
    assert scored_boxes(boxes, other, tok) == boxes
    assert boxes[0].confidence is None and boxes[0].alternatives == ()


def test_generated_boxes_of_the_shipped_model_carry_their_scores(tmp_path):
    """End to end: the pipeline keeps each sequence's token scores, gives parsed boxes their confidence, and
    writes it to texts.json."""
    import json

    import numpy as np

    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.eval.models import EvalModel

    model = EvalModel.load(None)
    rgb = np.stack([generate_sample(seed_for("val", i), 64)["rgb"] for i in range(2)])
    det = model.sequence_modality("det")
    out = model.generate({model.rgb: rgb}, det)
    tok = model.base.tokenizer(det)
    for text, scores, boxes in zip(out.texts[det], out.scores[det], out.parsed[det]):
        assert tok.decode(scores.ids).strip() == text.strip()
        assert boxes and all(0 < b.confidence <= 1 for b in boxes)
        # the class and its runner-ups are exclusive choices at one position, scaled by one coordinate term
        assert all(b.confidence + sum(p for _, p in b.alternatives) <= 1 + 1e-6 for b in boxes)
    out.save(tmp_path)
    saved = json.loads((tmp_path / "texts.json").read_text())["parsed"][det][0][0]
    assert 0 < saved["confidence"] <= 1 and isinstance(saved["alternatives"], list)
