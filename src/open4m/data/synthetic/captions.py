"""Captions written from the scene graph, and the parser that reads them back.

Templates vary the wording but every object is named by its unique phrase
(size colour material shape), so a caption parses back into the object multiset and the
relations it states: generated captions can be scored against the scene they came from.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np

from .scene import COLORS, MATERIALS, SHAPES, SIZES, Scene
from ...errors import ConfigError, DataError

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RELATIONS = ("left_of", "right_of", "in_front_of", "behind")
RELATION_MARGIN = 0.3  # metres in the camera frame; closer pairs are not described (ambiguous)
#: How a caption lists its objects: in a random order drawn from the scene seed, or from left to right in the
#: image (by the centre of each object's visible box). A fixed spatial order gives an autoregressive decoder one
#: right next object instead of any of the ones not yet named, and tells a caption -> RGB model where each goes.
CAPTION_ORDERS = ("random", "left_to_right")

_COUNT_TEMPLATES = (
    "There {be} {n} {objects} in the room.",
    "The scene contains {n} {objects}.",
    "{N} {objects} {rest} on the floor.",
    "A room with {n} {objects}.",
)
_LIST_TEMPLATES = ("{Them}: {items}.", "I can see {items}.", "On the floor: {items}.")
_RELATION_TEMPLATES = {
    "left_of": ("The {a} is left of the {b}.", "The {a} is to the left of the {b}."),
    "right_of": ("The {a} is right of the {b}.", "To the right of the {b} is the {a}."),
    "in_front_of": ("The {a} is in front of the {b}.", "In front of the {b} stands the {a}."),
    "behind": ("The {a} is behind the {b}.", "Behind the {b} there is the {a}."),
}
_PHRASE = (f"(?:{'|'.join(SIZES)}) (?:{'|'.join(COLORS)}) (?:{'|'.join(MATERIALS)}) (?:{'|'.join(SHAPES)})")
_PHRASE_RE = re.compile(rf"\b({_PHRASE})\b")
_COUNT_RE = re.compile(rf"\b({'|'.join(NUMBER_WORDS)}) objects?\b")


def _relation_regex(template: str) -> re.Pattern:
    """The template as a pattern over the lower-cased text `parse_caption` reads."""
    pattern = re.escape(template.lower()).replace(r"\{a\}", f"(?P<a>{_PHRASE})").replace(r"\{b\}", f"(?P<b>{_PHRASE})")
    return re.compile(pattern)


_RELATION_RES = [(rel, _relation_regex(t)) for rel, ts in _RELATION_TEMPLATES.items() for t in ts]


def relations(scene: Scene, visible: list[int]) -> list[tuple[int, str, int]]:
    """All (i, relation, j) facts between visible objects, judged in the camera frame."""
    centres = scene.camera.to_camera(np.stack([o.centre for o in scene.objects])) if scene.objects else None
    facts = []
    for i in visible:
        for j in visible:
            if i == j:
                continue
            dx, dz = centres[i, 0] - centres[j, 0], centres[i, 2] - centres[j, 2]
            if dx < -RELATION_MARGIN:
                facts.append((i, "left_of", j))
            if dx > RELATION_MARGIN:
                facts.append((i, "right_of", j))
            if dz < -RELATION_MARGIN:
                facts.append((i, "in_front_of", j))
            if dz > RELATION_MARGIN:
                facts.append((i, "behind", j))
    return facts


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(scene: Scene, visible: list[int], max_relations: int = 3, *, order: str = "random",
            boxes: Sequence[Sequence[float]] | None = None) -> str:
    """A caption of the visible objects: a count, the list of objects, up to `max_relations` relations.

    Wording is drawn from a generator seeded by the scene seed, so it is deterministic too. `order` is one of
    :data:`CAPTION_ORDERS`; ``left_to_right`` needs `boxes`, each visible object's (xmin, ymin, xmax, ymax),
    and changes only the order of the list: the wording is the random order's, word for word.
    """
    check_caption_order(order)
    if order == "left_to_right" and (boxes is None or len(boxes) != len(visible)):
        raise DataError(f"a left_to_right caption needs one box per visible object ({len(visible)}), "
                        f"got {None if boxes is None else len(boxes)}")
    rng = np.random.default_rng([scene.seed, 7])
    n = len(visible)
    if n == 0:
        return "The room is empty."
    word = NUMBER_WORDS[n]
    count = _COUNT_TEMPLATES[rng.integers(len(_COUNT_TEMPLATES))].format(
        be="is" if n == 1 else "are", n=word, N=word.capitalize(), objects="object" if n == 1 else "objects",
        rest="rests" if n == 1 else "rest")
    listed = [visible[k] for k in rng.permutation(n)]  # drawn in either order, so the wording stays the same
    if order == "left_to_right":
        listed = _left_to_right(dict(zip(visible, boxes)))
    items = [f"a {scene.objects[i].phrase}" for i in listed]
    listing = _LIST_TEMPLATES[rng.integers(len(_LIST_TEMPLATES))].format(
        Them="It is" if n == 1 else "They are", items=_join(items))
    sentences = [count, listing]
    facts = relations(scene, visible)
    if facts:
        for k in rng.permutation(len(facts))[:max_relations]:
            i, rel, j = facts[k]
            options = _RELATION_TEMPLATES[rel]
            sentences.append(options[rng.integers(len(options))].format(
                a=scene.objects[i].phrase, b=scene.objects[j].phrase))
    return " ".join(sentences)


def _left_to_right(boxes: Mapping[int, Sequence[float]]) -> list[int]:
    """Object indices by the centre (x, then y) of their (xmin, ymin, xmax, ymax) boxes, ties by index."""
    centres = {i: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for i, b in boxes.items()}
    return sorted(boxes, key=lambda i: (centres[i], i))


def check_caption_order(order: str) -> str:
    """`order` if it is one of :data:`CAPTION_ORDERS`, else a `ConfigError` naming them."""
    if order not in CAPTION_ORDERS:
        raise ConfigError(f"unknown caption order {order!r}; choose one of {list(CAPTION_ORDERS)}")
    return order


def lists_left_to_right(text: str, scene_graph: Mapping[str, Any]) -> bool:
    """Whether caption `text` lists the visible objects of `scene_graph` left to right, as
    ``caption(..., order="left_to_right")`` writes them (a random order may happen to as well)."""
    objects, visible = scene_graph["objects"], scene_graph["visible"]
    phrase = {v["index"]: " ".join(objects[v["index"]][a] for a in ("size", "color", "material", "shape"))
              for v in visible}
    expected = [phrase[i] for i in _left_to_right({v["index"]: v["box"] for v in visible})]
    said = " ".join(p for p, _ in zip(_PHRASE_RE.findall(text.lower()), expected))
    return said == " ".join(expected)


def _parse_phrase(phrase: str) -> dict[str, str]:
    size, color, material, shape = phrase.split()
    return {"size": size, "color": color, "material": material, "shape": shape}


def parse_caption(text: str) -> dict:
    """Read a caption back into {num_objects, objects, relations} (the inverse of :func:`caption`).

    Objects are the distinct phrases in order of first mention; relations are the sentences that
    match a relation template. Case and the spaces a tokenizer's decode puts before punctuation do not
    matter, so a model's lower-cased captions read back like the originals. Raises ValueError when the
    text states no object count.
    """
    # an uncased vocabulary writes the model's captions in lower case, and its decode spaces punctuation ("floor : a")
    said = re.sub(r"\s+([.,:])", r"\1", text.strip()).lower()
    m = _COUNT_RE.search(said)
    if m is None and said != "the room is empty.":
        raise DataError(f"caption states no object count (expected e.g. 'three objects'): {text[:80]!r}")
    num = 0 if m is None else NUMBER_WORDS.index(m.group(1))
    seen: dict[str, None] = {}
    for phrase in _PHRASE_RE.findall(said):
        seen.setdefault(phrase)
    rels = []
    for sentence in re.split(r"(?<=\.)\s+", said):
        for rel, regex in _RELATION_RES:
            hit = regex.fullmatch(sentence.strip())
            if hit:
                rels.append({"subject": _parse_phrase(hit["a"]), "relation": rel, "object": _parse_phrase(hit["b"])})
                break
    return {"num_objects": num, "objects": [_parse_phrase(p) for p in seen], "relations": rels}
