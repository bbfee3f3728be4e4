"""Scoring one task of `open4m eval`: the model's predictions and trivial baselines, on any labelled samples.

The samples may come at any size, each its own (a folder of photos): dense predictions arrive
already resized to their ground truth (`open4m.eval.runner`), every metric accumulates per sample
(`open4m.metrics`), and a baseline that needs a map of the whole set (the mean image) averages the
ground truths on a common grid and resizes the result back to each sample.

Each task has one or more baselines, computed from the evaluation set itself (so they are, if
anything, flattered); `BASELINES` names them, the first is the one `EvalResult.metrics` keeps as
`baseline`:

- depth: the set's mean depth everywhere; each image's own median depth everywhere;
- normal: the set's mean normal everywhere; every normal facing the camera, (0, 0, -1) in the OpenCV
  camera frame (x right, y down, z forward) the data uses;
- semseg: the set's majority class everywhere;
- edges: no edges, and every pixel an edge (F1 = 2d / (1 + d) for an edge density d); det: no boxes, and one full-image box of the set's commonest class;
- caption: the set's most common caption, and an empty one; palette: the mean palette;
  metadata: the mean of each field; caption2rgb: the boxes read back from another scene's
  generated image; depthcaption2rgb: the set's mean image.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .captions import SceneCaptionMetrics
from ..errors import UnknownNameError
from ..tokenizers.sequences import Box
from ..metrics import (BoxAP, CaptionMetrics, DepthMetrics, NormalMetrics, SegmentationMetrics, palette_distance,
                       reconstruction_metrics)

__all__ = ["BASELINES", "VOID", "score", "resize", "edge_f1", "metadata_error", "caption_references"]

# The baselines of each task, in the order `score` returns them (the first is the primary one).
BASELINES: dict[str, tuple[str, ...]] = {
    "depth": ("mean depth of the set", "median depth per image"),
    "normal": ("mean normal of the set", "facing the camera"),
    "semseg": ("majority class",),
    "edges": ("no edges", "every pixel an edge"),
    "det": ("no boxes", "one full-image box of the commonest class"),
    "caption": ("most common caption", "empty caption"),
    "palette": ("mean palette",),
    "metadata": ("mean of each field",),
    "caption2rgb": ("another scene's image",),
    "depthcaption2rgb": ("mean image",),
    "recon": (),
}
VOID = 255  # a segmentation label read as "no class" (COCO, ADE20K and Cityscapes folders use it)
_COMMON_GRID = 64  # side of the grid a set's mean map is averaged on


# -- small metrics ----------------------------------------------------------------------------------
def edge_f1(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Pixel precision / recall / F1 of binary edge maps (nonzero = edge)."""
    p, g = np.asarray(pred) > 0, np.asarray(gt) > 0
    tp = float((p & g).sum())
    precision = tp / max(float(p.sum()), 1.0)
    recall = tp / max(float(g.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f1": f1}


def metadata_error(pred: Mapping[str, float], gt: Mapping[str, float], keys: Sequence[str]) -> float:
    """Mean absolute error over `keys`, each relative to its field's range in the 4M codec; missing fields count 1."""
    from ..tokenizers.sequences import METADATA_FIELDS

    spans = {f.name: (f.hi - f.lo) if f.kind == "float" else 10.0 for f in METADATA_FIELDS}
    errs = [min(abs(float(pred[k]) - float(gt[k])) / spans[k], 1.0) if k in pred else 1.0 for k in keys]
    return float(np.mean(errs))


def caption_references(value: Any) -> list[str]:
    """A sample's caption ground truth as references: one per non-empty line (or list item)."""
    lines = value if isinstance(value, (list, tuple)) else str(value).splitlines()
    return [str(line).strip() for line in lines if str(line).strip()]


# -- resizing ---------------------------------------------------------------------------------------
def resize(value: np.ndarray, size: tuple[int, int], base: str) -> np.ndarray:
    """An image modality's array resized to `size` (H, W): bicubic RGB (as `Pipeline` resizes its input),
    bilinear depth and normals (renormalised), nearest class maps and edges; the dtype is kept."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    value = np.asarray(value)
    if tuple(value.shape[:2]) == tuple(size):
        return value
    if base == "rgb" and value.dtype == np.uint8:
        return np.array(Image.fromarray(value).resize((size[1], size[0]), Image.BICUBIC))
    t = torch.from_numpy(value.astype(np.float32))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    nearest = base in ("semseg", "canny_edge")
    t = F.interpolate(t, size=tuple(size), mode="nearest" if nearest else "bilinear",
                      align_corners=None if nearest else False)
    out = t[0, 0].numpy() if value.ndim == 2 else t[0].permute(1, 2, 0).numpy()
    if base == "normal":
        out = out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-6)
    return out.round().astype(value.dtype) if np.issubdtype(value.dtype, np.integer) else out


def _shape(value: Any) -> tuple[int, int]:
    return tuple(np.shape(value)[:2])  # type: ignore[return-value]


def _mean_map(maps: Sequence[np.ndarray], base: str) -> list[np.ndarray]:
    """The set's mean map (averaged on a common grid), resized back to each sample's size."""
    grid = (_COMMON_GRID, _COMMON_GRID)
    mean = np.mean([resize(np.asarray(m, np.float32), grid, base) for m in maps], axis=0)
    return [resize(mean, _shape(m), base) for m in maps]


# -- scoring ----------------------------------------------------------------------------------------
Scores = tuple[dict[str, Any], dict[str, dict[str, Any]]]  # model metrics, {baseline name: metrics}


def score(task: str, preds: Sequence[Any], samples: Sequence[Mapping[str, Any]], num_classes: int) -> Scores:
    """`task`'s metrics of `preds` (in the data's form, dense maps at their ground truth's size) and of
    each of its `BASELINES`, on `samples`."""
    scorer = _SCORERS.get(task)
    if scorer is None:
        raise UnknownNameError(f"unknown task {task!r}; choose from {', '.join(_SCORERS)}")
    model, baselines = scorer(list(preds), samples, num_classes)
    return model, dict(zip(BASELINES[task], baselines))


def _each(metric: Callable[[], Any], preds: Sequence[Any], truths: Sequence[Any]) -> dict[str, Any]:
    m = metric()
    for p, t in zip(preds, truths):
        m.update(p, t)
    return m.compute()


def _depth(preds, samples, num_classes) -> tuple[dict, list]:
    gts = [np.asarray(s["depth"], np.float64) for s in samples]
    with np.errstate(invalid="ignore"):
        valid = [g[np.isfinite(g) & (g > 0)] for g in gts]
    mean = float(np.concatenate(valid).mean())

    def metrics(maps: Sequence[np.ndarray]) -> dict[str, float]:
        # raw: metres as predicted; scaled_*: each prediction times median(gt) / median(pred) of its image
        raw, scaled = _each(DepthMetrics, maps, gts), _each(lambda: DepthMetrics(align="median"), maps, gts)
        return {**raw, **{f"scaled_{k}": v for k, v in scaled.items()}}

    medians = [float(np.median(v)) if v.size else mean for v in valid]
    return metrics(preds), [metrics([np.full(g.shape, mean) for g in gts]),
                            metrics([np.full(g.shape, m) for g, m in zip(gts, medians)])]


def _normal(preds, samples, num_classes) -> tuple[dict, list]:
    gts = [np.asarray(s["normal"], np.float64) for s in samples]
    with np.errstate(invalid="ignore"):
        valid = np.concatenate([g[np.isfinite(g).all(-1) & (np.linalg.norm(g, axis=-1) > 0.5)] for g in gts])
    mean = valid.mean(0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-8)
    facing = np.array([0.0, 0.0, -1.0])
    return _each(NormalMetrics, preds, gts), [_each(NormalMetrics, [np.broadcast_to(mean, g.shape) for g in gts], gts),
                                              _each(NormalMetrics, [np.broadcast_to(facing, g.shape) for g in gts], gts)]


def _semseg(preds, samples, num_classes) -> tuple[dict, list]:
    gts = [np.asarray(s["semseg"], np.int64) for s in samples]
    labels = np.concatenate([g.ravel() for g in gts])
    majority = int(np.bincount(labels[labels != VOID]).argmax())

    def metric() -> SegmentationMetrics:
        return SegmentationMetrics(num_classes, ignore_index=VOID if num_classes <= VOID else None)

    return _each(metric, preds, gts), [_each(metric, [np.full(g.shape, majority) for g in gts], gts)]


def _edges(preds, samples, num_classes) -> tuple[dict, list]:
    gt = np.concatenate([np.ravel(s["canny_edge"]) for s in samples])
    return (edge_f1(np.concatenate([np.ravel(p) for p in preds]), gt),
            [edge_f1(np.zeros_like(gt), gt), edge_f1(np.full_like(gt, 255), gt)])


def _parsed(key: str, text: str) -> Any:
    from ..data.synthetic import world

    try:
        return world.parse_text(key, text)
    except (ValueError, IndexError, KeyError):
        return None


def _boxes_of(sample: Mapping[str, Any]) -> list[tuple[list[float], str]]:
    return [(inst["boxes"], inst["class_name"]) for inst in sample["det"]["instances"]]


def _detections(box: Box, position: int) -> list[tuple[list[float], str, float]]:
    """A generated box as scored detections: its class at the model's confidence, and each runner-up class
    at its own probability (a detector with per-class scores). Without a confidence (boxes read from text),
    the order of writing ranks them: the model writes its surest box first."""
    corners = [box.xmin, box.ymin, box.xmax, box.ymax]
    if box.confidence is None:
        return [(corners, box.class_name, 1.0 - 1e-3 * position)]
    return [(corners, box.class_name, box.confidence), *((corners, name, p) for name, p in box.alternatives)]


def _det(preds, samples, num_classes) -> tuple[dict, list]:
    """`preds`: per sample, the generated boxes (`EvalModel.boxes`), None where the text did not parse."""
    gts = [_boxes_of(s) for s in samples]
    commonest = Counter(c for boxes in gts for _, c in boxes).most_common(1)
    full = [([0.0, 0.0, 1.0, 1.0], commonest[0][0], 1.0)] if commonest else []
    model, parsed_ok = BoxAP(), 0
    for boxes, truth in zip(preds, gts):
        parsed_ok += boxes is not None
        model.update([d for i, x in enumerate(boxes or []) for d in _detections(x, i)], truth)
    out = []
    for dets in ([], full):
        b = BoxAP()
        for truth in gts:
            b.update(dets, truth)
        out.append({**b.compute(), "parse_rate": 1.0})
    return {**model.compute(), "parse_rate": parsed_ok / len(preds)}, out


def _caption(preds, samples, num_classes) -> tuple[dict, list]:
    refs = [caption_references(s["caption"]) for s in samples]
    commonest = Counter(r for rs in refs for r in rs).most_common(1)[0][0]
    graphs = [s.get("scene_graph") for s in samples]

    def metrics(texts: Sequence[str]) -> dict[str, float]:
        m = CaptionMetrics()
        for text, rs in zip(texts, refs):
            m.update(text, rs)
        out = m.compute()
        if all(g is not None for g in graphs):  # the procedural world: the caption's claims checked too
            out.update(_each(SceneCaptionMetrics, texts, graphs))
        return out

    return metrics(preds), [metrics([commonest] * len(preds)), metrics([""] * len(preds))]


def _palette(preds, samples, num_classes) -> tuple[dict, list]:
    from ..data.synthetic import world

    gts = [world.palette_of(s) for s in samples]
    mean = np.mean(np.asarray(gts, np.float64), axis=0)
    dist, ok = [], 0
    for text, g in zip(preds, gts):
        colors = _parsed("color_palette", text)
        ok += colors is not None
        dist.append(palette_distance(colors, g) if colors else 255 * math.sqrt(3))
    return ({"distance": float(np.mean(dist)), "parse_rate": ok / len(preds)},
            [{"distance": float(np.mean([palette_distance(mean, g) for g in gts])), "parse_rate": 1.0}])


def _metadata(preds, samples, num_classes) -> tuple[dict, list]:
    from ..data.synthetic import world

    keys = world.METADATA_KEYS
    gts = [{k: float(s["metadata"][k]) for k in keys} for s in samples]
    mean = {k: float(np.mean([g[k] for g in gts])) for k in keys}
    errs, ok = [], 0
    for text, g in zip(preds, gts):
        meta = _parsed("metadata", text)
        ok += meta is not None
        errs.append(metadata_error(meta or {}, g, keys))
    return ({"mae": float(np.mean(errs)), "parse_rate": ok / len(preds)},
            [{"mae": float(np.mean([metadata_error(mean, g, keys) for g in gts])), "parse_rate": 1.0}])


def _visible_shapes(sample: Mapping[str, Any]) -> Counter:
    objs = sample["scene_graph"]["objects"]
    return Counter(objs[v["index"]]["shape"] for v in sample["scene_graph"]["visible"])


def _multiset_f1(pred: Counter, true: Counter) -> float:
    tp = sum((pred & true).values())
    if not pred and not true:
        return 1.0
    p, r = tp / max(sum(pred.values()), 1), tp / max(sum(true.values()), 1)
    return 2 * p * r / max(p + r, 1e-12)


def _caption2rgb(preds, samples, num_classes) -> tuple[dict, list]:
    """Each prediction is one draw (image, boxes read back from it) or a list of draws of the scene: `shape_f1` and
    `count_acc` are each scene's mean over its draws, averaged over the scenes (the model's expected read-back:
    one draw's swings with the seed, docs/results.md); `shape_f1_one` the first draw's alone."""
    def consistency(draws: Sequence[Sequence[str]]) -> dict[str, float]:
        f1, count = [], []
        for texts, s in zip(draws, samples):
            truth = _visible_shapes(s)
            boxes = [_parsed("det", text) or [] for text in texts]
            f1.append([_multiset_f1(Counter(x.class_name for x in b), truth) for b in boxes])
            count.append([float(len(b) == sum(truth.values())) for b in boxes])
        return {"shape_f1": float(np.mean([np.mean(f) for f in f1])),
                "count_acc": float(np.mean([np.mean(c) for c in count])),
                "shape_f1_one": float(np.mean([f[0] for f in f1]))}

    draws = [[d for _, d in (p if isinstance(p, list) else [p])] for p in preds]
    return consistency(draws), [consistency(draws[1:] + draws[:1])]  # baseline: *another* scene's draws


def _pixels(maps: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 images -> one flat float array in [-1, 1] (pooled over the set, any sizes)."""
    return np.concatenate([np.ravel(np.asarray(m, np.float64)) for m in maps]) / 127.5 - 1


def _depthcaption2rgb(preds, samples, num_classes) -> tuple[dict, list]:
    """Each prediction is one image (H, W, 3), a stack of samples (K, H, W, 3), or {"estimate": image,
    "samples": stack}: `psnr` (and mse, l1) score the estimate, else the stack's pixel mean (the least-squares
    estimate of K samples); `psnr_samples` that mean, `psnr_sample` the first sample alone."""
    gts = [s["rgb"] for s in samples]
    given = [p if isinstance(p, Mapping) else {"samples": p} for p in preds]
    stacks = [np.asarray(p["samples"])[None] if np.ndim(p["samples"]) == 3 else np.asarray(p["samples"]) for p in given]
    means = [st.astype(np.float64).mean(0) for st in stacks]
    estimates = [np.asarray(p["estimate"], np.float64) if "estimate" in p else m for p, m in zip(given, means)]
    scores = reconstruction_metrics(_pixels(estimates), _pixels(gts))
    scores["psnr_samples"] = reconstruction_metrics(_pixels(means), _pixels(gts))["psnr"]
    scores["psnr_sample"] = reconstruction_metrics(_pixels([st[0] for st in stacks]), _pixels(gts))["psnr"]
    return scores, [reconstruction_metrics(_pixels(_mean_map(gts, "rgb")), _pixels(gts))]


def _recon(preds, samples, num_classes) -> tuple[dict, list]:
    """Each tokenizer's round trip, against the ground truth at the size the tokenizer saw."""
    rows: dict[str, dict[str, float]] = {}
    bases = [b for b in ("rgb", "depth", "normal", "semseg", "canny_edge") if preds and b in preds[0]]
    for b in bases:
        rec = [p[b] for p in preds]
        gt = [resize(s[b], _shape(r), b) for s, r in zip(samples, rec)]
        if b == "rgb":
            rgb = reconstruction_metrics(_pixels(rec), _pixels(gt))
            rows[b] = {"psnr": rgb["psnr"], "mse": rgb["mse"]}
        elif b == "depth":
            rows[b] = _each(DepthMetrics, rec, gt)
        elif b == "normal":
            rows[b] = _each(NormalMetrics, rec, gt)
        elif b == "semseg":
            top = max([num_classes] + [int(np.max(x)) + 1 for x in rec + gt])
            res = _each(lambda: SegmentationMetrics(top), rec, gt)
            rows[b] = {k: v for k, v in res.items() if k != "iou_per_class"}
        else:
            e = edge_f1(np.concatenate([np.ravel(x) for x in rec]), np.concatenate([np.ravel(x) for x in gt]))
            rows[b] = {"f1": e["f1"], "precision": e["precision"], "recall": e["recall"]}
    return rows, []


_SCORERS: dict[str, Callable[..., tuple[dict, list]]] = {
    "depth": _depth, "normal": _normal, "semseg": _semseg, "edges": _edges, "det": _det, "caption": _caption,
    "palette": _palette, "metadata": _metadata, "recon": _recon, "caption2rgb": _caption2rgb,
    "depthcaption2rgb": _depthcaption2rgb,
}
