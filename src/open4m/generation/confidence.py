"""Detection confidence from the probabilities of the generated tokens.

A `det` sequence is text (``v0=.. v1=.. v2=.. v3=.. <class>`` per box), so a generated box carries
no score of its own. Box AP ranks every box of a dataset by its score, and ranking by the order
of writing (first box surest) throws away what the decoder knew. Here each box gets:

- ``confidence``: the probability of its class name given the box, times the geometric mean of
  the probabilities of its four coordinate tokens (how sure the model was of what and where) —
  the class-token likelihood is Pix2Seq's detection score, the coordinate term breaks its ties;
- ``alternatives``: the other class names the model weighed at the class position, each with
  its own probability times the same coordinate term: a detector with per-class scores (COCO
  takes up to 100 detections per image) counts the same box once per likely class.

Runner-up classes are offered for one-token class names (every COCO class is one token of the 4M
vocabulary; so is every word of a world vocabulary trained with ``text.extra_words``): the first
piece of a longer name is not a name of its own.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from ..modalities import CLASS_BASE, NUM_BINS, NUM_VALUE_KINDS, VALUE_BASE
from ..tokenizers.sequences import Box
from .sampler import TokenScores


def _value_kind(token: int) -> int | None:
    """k of a value token ``v{k}=..``; None for any other token."""
    offset = token - VALUE_BASE
    return offset // NUM_BINS if 0 <= offset < NUM_VALUE_KINDS * NUM_BINS else None


def _is_word(token: int, tokenizer) -> bool:
    """A token that is a whole class-name word on its own (not structural, not a value, not a ``##`` piece)."""
    return token >= CLASS_BASE and not tokenizer.id_to_token(token).startswith("##")


def _box_spans(ids: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """(positions of the 4 coordinate tokens, positions of the class-name tokens) of each well-formed box,
    found as `BoxCodec.read_generated` finds them in the text: v0..v3 in order, then a name; anything else
    is skipped."""
    spans, i = [], 0
    while i < len(ids):
        if [_value_kind(t) for t in ids[i:i + 4]] != [0, 1, 2, 3]:
            i += 1
            continue
        end = i + 4
        while end < len(ids) and ids[end] >= CLASS_BASE:
            end += 1
        if end > i + 4:
            spans.append((list(range(i, i + 4)), list(range(i + 4, end))))
        i = max(end, i + 1)
    return spans


def scored_boxes(boxes: Sequence[Box], scores: TokenScores, tokenizer) -> list[Box]:
    """`boxes` (parsed from the generated text) with the `confidence` and `alternatives` the token
    scores give them; unchanged when the tokens do not line up with the parsed boxes."""
    spans = _box_spans(scores.ids)
    if len(spans) != len(boxes):
        return list(boxes)
    out = []
    for box, (coords, name) in zip(boxes, spans):
        where = math.exp(sum(scores.logprobs[i] for i in coords) / len(coords))
        alternatives: tuple[tuple[str, float], ...] = ()
        if len(name) == 1:
            first = name[0]
            alternatives = tuple((tokenizer.decode([t]).strip(), math.exp(lp) * where)
                                 for t, lp in scores.choices[first]
                                 if t != scores.ids[first] and _is_word(t, tokenizer))
        what = math.exp(sum(scores.logprobs[i] for i in name))
        out.append(dataclasses.replace(box, confidence=what * where, alternatives=alternatives))
    return out


__all__ = ["scored_boxes"]
