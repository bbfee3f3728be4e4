"""Scene-graph accuracy of generated captions for the procedural world.

A caption of the procedural world names every object by a unique phrase (size colour material
shape) and states relations with fixed templates, so a generated caption parses back into claims
that can be checked against the scene graph the image was rendered from: the object count, the
multisets of colours and shapes, the objects themselves, and whether each stated relation holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..data.synthetic.captions import parse_caption
from ..errors import DataError

_ATTRS = ("size", "color", "material", "shape")


def _f1(pred: Counter, true: Counter) -> tuple[float, float, float]:
    hit = sum((pred & true).values())
    p = hit / max(sum(pred.values()), 1)
    r = hit / max(sum(true.values()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass
class SceneCaptionMetrics:
    """Accumulates caption scores over a set; `compute()` averages per caption.

    - `count_acc`: the stated number of objects equals the number of visible objects;
    - `color_f1`, `shape_f1`, `object_f1`: multiset F1 of colours, shapes and full phrases;
    - `relation_acc`: fraction of stated relations that are true in the scene (captions stating
      none are skipped); `parse_rate`: fraction of captions that state an object count at all.
    """

    _rows: list = field(default_factory=list)

    def update(self, caption: str, scene_graph: Mapping[str, Any]) -> dict[str, float]:
        objects = scene_graph["objects"]
        visible = [objects[v["index"]] for v in scene_graph["visible"]]
        truth = {(o["size"], o["color"], o["material"], o["shape"]) for o in visible}
        try:
            parsed = parse_caption(caption)
        except ValueError:
            row = {"parsed": 0.0, "count_acc": 0.0, "color_f1": 0.0, "shape_f1": 0.0, "object_f1": 0.0}
            self._rows.append(row)
            return row
        said = [tuple(o[a] for a in _ATTRS) for o in parsed["objects"]]
        true_objects = [tuple(o[a] for a in _ATTRS) for o in visible]
        row = {
            "parsed": 1.0,
            "count_acc": float(parsed["num_objects"] == len(visible)),
            "color_f1": _f1(Counter(s[1] for s in said), Counter(t[1] for t in true_objects))[2],
            "shape_f1": _f1(Counter(s[3] for s in said), Counter(t[3] for t in true_objects))[2],
            "object_f1": _f1(Counter(said), Counter(true_objects))[2],
        }
        if parsed["relations"]:
            index = {tuple(objects[v["index"]][a] for a in _ATTRS): v["index"] for v in scene_graph["visible"]}
            facts = {(r["subject"], r["relation"], r["object"]) for r in scene_graph["relations"]}
            correct = 0
            for rel in parsed["relations"]:
                s = index.get(tuple(rel["subject"][a] for a in _ATTRS))
                o = index.get(tuple(rel["object"][a] for a in _ATTRS))
                correct += int(s is not None and o is not None and (s, rel["relation"], o) in facts)
            row["relation_acc"] = correct / len(parsed["relations"])
        self._rows.append(row)
        return row

    def compute(self) -> dict[str, float]:
        if not self._rows:
            raise DataError("no captions were scored; call update(caption, scene_graph) first")
        n = len(self._rows)
        out = {"parse_rate": sum(r["parsed"] for r in self._rows) / n}
        for key in ("count_acc", "color_f1", "shape_f1", "object_f1"):
            out[key] = sum(r[key] for r in self._rows) / n
        rel = [r["relation_acc"] for r in self._rows if "relation_acc" in r]
        out["relation_acc"] = sum(rel) / len(rel) if rel else float("nan")
        return out
