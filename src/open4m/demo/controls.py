"""The controllable-generation picture of `open4m demo` (`controls.png`).

Any-to-any models are only convincing when an edit of the condition shows up in the picture and nothing
else moves. For each scene, RGB is generated from its caption and from the same caption with one
colour word changed, and from its boxes and from the same boxes with the first one moved sideways; each
pair shares the seed, so the edit is the only difference between the two conditions.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.synthetic import COLORS, parse_caption, world

#: How far the first box moves (a fraction of the image width).
BOX_SHIFT = 0.25


def recolour(caption: str) -> tuple[str, str]:
    """`caption` with its first object's colour changed; returns (edited caption, "old -> new").

    Every mention of that object's phrase changes (captions repeat the full phrase in their relation
    sentences), so the edited caption still describes one consistent scene. A caption naming no object
    is returned unchanged with an empty description.
    """
    try:
        objects = parse_caption(caption)["objects"]
    except ValueError:
        objects = []
    if not objects:
        return caption, ""
    first = objects[0]
    names = list(COLORS)
    new = names[(names.index(first["color"]) + len(names) // 2) % len(names)]  # a far-away hue, not a neighbour
    old_phrase = " ".join(first[k] for k in ("size", "color", "material", "shape"))
    new_phrase = " ".join((first["size"], new, first["material"], first["shape"]))
    return re.sub(rf"\b{re.escape(old_phrase)}\b", new_phrase, caption), f"{first['color']} -> {new}"


def move_first_box(det: Mapping[str, Any], shift: float = BOX_SHIFT) -> dict[str, Any]:
    """A copy of a det value whose first box moves `shift` of the width sideways (right, or left when it
    would leave the image), keeping its size."""
    moved = copy.deepcopy(dict(det))
    instances = moved.get("instances") or []
    if instances:
        x0, y0, x1, y1 = (float(c) for c in instances[0]["boxes"])
        dx = shift if x1 + shift <= 1.0 else -min(shift, x0)
        instances[0]["boxes"] = [x0 + dx, y0, x1 + dx, y1]
    return moved


def control_columns(model: Any, samples: Sequence[Mapping[str, Any]], *, steps: int = 8, seed: int = 0,
                    tile: Any = None, caption_tile: Any = None) -> list[tuple[str, list[np.ndarray]]]:
    """Labelled columns (title, tiles): caption | RGB | edited caption | RGB | boxes | RGB | moved box | RGB.

    `model` is an `open4m.eval.models.EvalModel` that reads captions and boxes; `tile(name, value, rgb)`
    and `caption_tile(text)` draw one cell (the demo's own tile functions).
    """
    captions = [s["caption"] for s in samples]
    edits = [recolour(c) for c in captions]
    blank = np.full_like(np.asarray(samples[0]["rgb"]), 255)
    dets = [s["det"] for s in samples]
    moved = [move_first_box(d) for d in dets]
    caption_rgb = _generate(model, "caption", captions, steps, seed)
    edited_rgb = _generate(model, "caption", [e for e, _ in edits], steps, seed)
    box_rgb = _generate(model, "det", [_det_text(d) for d in dets], steps, seed)
    moved_rgb = _generate(model, "det", [_det_text(d) for d in moved], steps, seed)
    return [
        ("caption", [caption_tile(c) for c in captions]),
        ("caption->RGB", [tile("rgb", g) for g in caption_rgb]),
        ("one colour changed", [caption_tile(f"[{what}]\n{e}" if what else e) for e, what in edits]),
        ("edited->RGB", [tile("rgb", g) for g in edited_rgb]),
        ("boxes", [tile("det", d, blank) for d in dets]),
        ("boxes->RGB", [tile("rgb", g) for g in box_rgb]),
        ("first box moved", [tile("det", d, blank) for d in moved]),
        ("moved->RGB", [tile("rgb", g) for g in moved_rgb]),
    ]


def can_control(model: Any) -> str | None:
    """Why `model` cannot draw the controls picture (None when it can)."""
    missing = [k for k in ("caption", "det") if model.sequence_modality(k, output=False) is None]
    if missing:
        return f"the model does not read {' or '.join(missing)}"
    if model.image_modality("rgb") is None:
        return "the model does not generate RGB tokens"
    return None


def _det_text(det: Mapping[str, Any]) -> str:
    return world.sequence_text("det", {"det": det})


def _generate(model: Any, key: str, texts: Sequence[str], steps: int, seed: int) -> np.ndarray:
    """RGB from captions or boxes, through the links of the model's caption -> RGB chain that follow `key` (all of
    them after a caption) and with its guidance, so the picture is drawn as the eval draws it."""
    from ..eval.runner import chained

    chain = model.caption_rgb_chain
    links = chain[chain.index(key) + 1:] if key in chain else chain if key == "caption" else ()
    inputs = chained(model, {model.sequence_modality(key, output=False): model.text_condition(key, texts)}, links)
    return model.image("rgb", inputs, steps=steps, temperature=1.0, seed=seed, cfg=model.caption_rgb_cfg(inputs))
