"""`open4m eval`: score a world model's any-to-any predictions against ground truth and trivial baselines.

Samples are world-form dicts (what `open4m.data.synthetic.generate_sample` returns, or what a folder
written by `open4m synth` decodes to). Every task reports the model next to a trivial predictor
computed from the evaluation set itself (so the baseline is, if anything, flattered): a constant map
at the mean depth, the mean normal, the majority class, no boxes, one constant caption, the mean palette,
the mean metadata, no edges. For caption -> RGB the generated image is read back by the model's own
RGB -> boxes and compared with the caption's scene; the baseline reads back real images of *other*
scenes, which shows how much of the caption the generated image carries.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .captions import SceneCaptionMetrics
from ..metrics import BoxAP, DepthMetrics, NormalMetrics, SegmentationMetrics, palette_distance, reconstruction_metrics
from ..atomic import write_text_atomic

TASKS: tuple[str, ...] = ("depth", "normal", "semseg", "edges", "det", "caption", "palette", "metadata",
                          "recon", "caption2rgb", "depthcaption2rgb")
# Headline number of each task and whether higher is better (for the table and the quality floor).
HEADLINE: dict[str, tuple[str, bool]] = {
    "depth": ("abs_rel", False), "normal": ("mean_deg", False), "semseg": ("miou", True), "edges": ("f1", True),
    "det": ("map_50", True), "caption": ("count_acc", True), "palette": ("distance", False),
    "metadata": ("mae", False), "caption2rgb": ("shape_f1", True), "depthcaption2rgb": ("psnr", True),
}


def parse_tasks(text: str | Sequence[str]) -> list[str]:
    """`"depth,normal"` or a list, or `all` -> validated task names."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if names == ["all"]:
        return list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown tasks {unknown}; choose from {', '.join(TASKS)} (or all)")
    return names


def load_folder(root: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """World-form samples from a folder dataset (`root/<modality>/<name>.<ext>`, as `open4m synth` writes)."""
    from ..data.formats import FolderDataset

    need = ["rgb", "depth", "normal", "semseg", "canny_edge", "det", "caption", "scene_graph", "color_palette", "metadata"]
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"eval data folder {root} does not exist; write one with `open4m synth --out {root} --split val`")
    present = [m for m in need if (root / m).is_dir()]
    ds = FolderDataset(root, modalities=present, required=present)
    if len(ds) == 0:
        raise ValueError(f"{root}: no sample has all of {present}")
    n = len(ds) if limit is None else min(limit, len(ds))
    return [ds[i] for i in range(n)]


# -- small metrics not in open4m.eval.metrics -------------------------------------------------------
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


def _boxes_of(sample: Mapping[str, Any]) -> list[tuple[list[float], str]]:
    return [(inst["boxes"], inst["class_name"]) for inst in sample["det"]["instances"]]


def _visible_shapes(sample: Mapping[str, Any]) -> Counter:
    objs = sample["scene_graph"]["objects"]
    return Counter(objs[v["index"]]["shape"] for v in sample["scene_graph"]["visible"])


def _multiset_f1(pred: Counter, true: Counter) -> float:
    tp = sum((pred & true).values())
    if not pred and not true:
        return 1.0
    p, r = tp / max(sum(pred.values()), 1), tp / max(sum(true.values()), 1)
    return 2 * p * r / max(p + r, 1e-12)


# -- the runner -------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """Per task: `model` and `baseline` metric dicts; `predictions` keeps what the demo draws."""

    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    predictions: dict[str, list[Any]] = field(default_factory=dict)
    num_samples: int = 0

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, float) and math.isnan(v):
                return None
            return v
        return {"num_samples": self.num_samples, "metrics": clean(self.metrics)}

    def table(self) -> str:
        """One line per task: headline metric for the model and the baseline."""
        rows = [f"{'task':<18}{'metric':<12}{'model':>10}{'baseline':>10}", "-" * 50]
        for task, res in self.metrics.items():
            if task == "recon":
                for mod, vals in res["model"].items():
                    key = next(iter(vals))  # each row lists its headline metric first
                    rows.append(f"{'recon/' + mod:<18}{key:<12}{vals[key]:>10.4f}{'':>10}")
                continue
            key, _ = HEADLINE[task]
            rows.append(f"{task:<18}{key:<12}{res['model'][key]:>10.4f}{res['baseline'][key]:>10.4f}")
        return "\n".join(rows)


def _batches(samples: Sequence[Mapping[str, Any]], size: int) -> list[list[Mapping[str, Any]]]:
    return [list(samples[i:i + size]) for i in range(0, len(samples), size)]


def evaluate(model: Any, samples: Sequence[Mapping[str, Any]], tasks: Sequence[str] = TASKS, *, batch_size: int = 8,
             progress: bool = True, on_step: Callable[[str], None] | None = None) -> EvalResult:
    """Score `model` (an `open4m.demo.WorldModel`) on world-form `samples` for `tasks`."""
    from tqdm import tqdm

    from ..data.synthetic import SEMSEG_CLASSES
    from ..data.synthetic import world

    tasks = parse_tasks(list(tasks))
    if not samples:
        raise ValueError("no samples to evaluate")
    result = EvalResult(num_samples=len(samples))
    preds: dict[str, list[Any]] = {}
    bar = tqdm(total=len(tasks) * math.ceil(len(samples) / batch_size), desc="eval", unit="batch", disable=not progress)
    rgb_tasks = {"depth": "depth", "normal": "normal", "semseg": "semseg", "edges": "canny_edge"}
    seq_tasks = {"det": "det", "caption": "caption", "palette": "color_palette", "metadata": "metadata"}
    for task in tasks:
        out: list[Any] = []
        for chunk in _batches(samples, batch_size):
            rgb = np.stack([s["rgb"] for s in chunk])
            cond = {model.spec.rgb_pixels: model.rgb_pixels(rgb)}
            if task in rgb_tasks:
                out.extend(model.predict_image(rgb_tasks[task], cond))
            elif task in seq_tasks:
                out.extend(model.predict_text(seq_tasks[task], cond))
            elif task == "caption2rgb":
                gen = model.rgb_from([s["caption"] for s in chunk])
                out.extend(zip(gen, model.predict_text("det", {model.spec.rgb_pixels: model.rgb_pixels(gen)})))
            elif task == "depthcaption2rgb":
                out.extend(model.rgb_from([s["caption"] for s in chunk], np.stack([s["depth"] for s in chunk])))
            elif task == "recon":
                rec = {b: model.detokenize_image(b, model.tokenize_image(b, np.stack([s[b] for s in chunk])))
                       for b in world.IMAGE_MODALITIES}
                out.extend({b: rec[b][i] for b in rec} for i in range(len(chunk)))
            bar.update(1)
            if on_step:
                on_step(task)
        preds[task] = out
        result.metrics[task] = _score(task, out, samples, len(SEMSEG_CLASSES))
    bar.close()
    result.predictions = preds
    return result


def _parsed(key: str, text: str) -> Any:
    from ..data.synthetic import world

    try:
        return world.parse_text(key, text)
    except (ValueError, IndexError, KeyError):
        return None


def _versus(make: Any, preds: Sequence[Any], truths: Sequence[Any], baseline: Any) -> dict[str, dict]:
    """Score the predictions and one constant baseline prediction with fresh accumulators."""
    model, base = make(), make()
    for pred, truth in zip(preds, truths):
        model.update(pred, truth)
        base.update(baseline, truth)
    return {"model": model.compute(), "baseline": base.compute()}


def _score(task: str, preds: list[Any], samples: Sequence[Mapping[str, Any]], num_classes: int) -> dict[str, dict]:
    from ..data.synthetic import world

    if task == "depth":
        gt = np.stack([s["depth"] for s in samples])
        mean_map = np.full(gt.shape[1:], float(gt[gt > 0].mean()))
        return _versus(DepthMetrics, preds, gt, mean_map)
    if task == "normal":
        gt = np.stack([s["normal"] for s in samples]).astype(np.float64)
        valid = np.linalg.norm(gt, axis=-1) > 0.5
        mean = gt[valid].mean(0)
        const = np.broadcast_to(mean / max(np.linalg.norm(mean), 1e-8), gt.shape[1:])
        return _versus(NormalMetrics, preds, gt, const)
    if task == "semseg":
        gt = np.stack([s["semseg"] for s in samples]).astype(np.int64)
        majority = np.bincount(gt.ravel(), minlength=num_classes).argmax()
        return _versus(lambda: SegmentationMetrics(num_classes), preds, gt, np.full(gt.shape[1:], majority))
    if task == "edges":
        gt = np.stack([s["canny_edge"] for s in samples])
        return {"model": edge_f1(np.stack(preds), gt), "baseline": edge_f1(np.zeros_like(gt), gt)}
    if task == "det":
        m, b = BoxAP(), BoxAP()
        parsed_ok = 0
        for text, s in zip(preds, samples):
            boxes = _parsed("det", text)
            parsed_ok += boxes is not None
            dets = [([x.xmin, x.ymin, x.xmax, x.ymax], x.class_name, 1.0 - 1e-3 * i) for i, x in enumerate(boxes or [])]
            m.update(dets, _boxes_of(s))
            b.update([], _boxes_of(s))
        return {"model": {**m.compute(), "parse_rate": parsed_ok / len(preds)}, "baseline": {**b.compute(), "parse_rate": 1.0}}
    if task == "caption":
        m, b = SceneCaptionMetrics(), SceneCaptionMetrics()
        constant = samples[0]["caption"]
        for text, s in zip(preds, samples):
            m.update(text, s["scene_graph"])
            b.update(constant, s["scene_graph"])
        return {"model": m.compute(), "baseline": b.compute()}
    if task == "palette":
        gts = [world.palette_of(s) for s in samples]
        mean = np.mean(np.asarray(gts, np.float64), axis=0)
        dist, ok = [], 0
        for text, g in zip(preds, gts):
            colors = _parsed("color_palette", text)
            ok += colors is not None
            dist.append(palette_distance(colors, g) if colors else 255 * math.sqrt(3))
        base = [palette_distance(mean, g) for g in gts]
        return {"model": {"distance": float(np.mean(dist)), "parse_rate": ok / len(preds)},
                "baseline": {"distance": float(np.mean(base)), "parse_rate": 1.0}}
    if task == "metadata":
        keys = world.METADATA_KEYS
        gts = [{k: float(s["metadata"][k]) for k in keys} for s in samples]
        mean = {k: float(np.mean([g[k] for g in gts])) for k in keys}
        errs, ok = [], 0
        for text, g in zip(preds, gts):
            meta = _parsed("metadata", text)
            ok += meta is not None
            errs.append(metadata_error(meta or {}, g, keys))
        return {"model": {"mae": float(np.mean(errs)), "parse_rate": ok / len(preds)},
                "baseline": {"mae": float(np.mean([metadata_error(mean, g, keys) for g in gts])), "parse_rate": 1.0}}
    if task == "caption2rgb":
        def consistency(det_texts: Sequence[str]) -> dict[str, float]:
            f1, count = [], []
            for text, s in zip(det_texts, samples):
                boxes = _parsed("det", text) or []
                truth = _visible_shapes(s)
                f1.append(_multiset_f1(Counter(x.class_name for x in boxes), truth))
                count.append(float(len(boxes) == sum(truth.values())))
            return {"shape_f1": float(np.mean(f1)), "count_acc": float(np.mean(count))}
        # baseline: the same read-back applied to the model's boxes of *another* scene's generated image
        det_texts = [d for _, d in preds]
        return {"model": consistency(det_texts), "baseline": consistency(det_texts[1:] + det_texts[:1])}
    if task == "depthcaption2rgb":
        gt = np.stack([s["rgb"] for s in samples]).astype(np.float64) / 127.5 - 1
        gen = np.stack(preds).astype(np.float64) / 127.5 - 1
        mean = np.broadcast_to(gt.mean(0), gt.shape)
        return {"model": reconstruction_metrics(gen, gt), "baseline": reconstruction_metrics(mean, gt)}
    if task == "recon":
        rows: dict[str, dict[str, float]] = {}
        gt = {b: np.stack([s[b] for s in samples]) for b in world.IMAGE_MODALITIES}
        rec = {b: np.stack([p[b] for p in preds]) for b in world.IMAGE_MODALITIES}
        rows["rgb"] = reconstruction_metrics(rec["rgb"].astype(np.float64) / 127.5 - 1, gt["rgb"].astype(np.float64) / 127.5 - 1)
        rows["rgb"] = {"psnr": rows["rgb"]["psnr"], "mse": rows["rgb"]["mse"]}
        d = DepthMetrics()
        d.update(rec["depth"], gt["depth"])
        rows["depth"] = d.compute()
        n = NormalMetrics()
        n.update(rec["normal"], gt["normal"])
        rows["normal"] = n.compute()
        s = SegmentationMetrics(num_classes)
        s.update(rec["semseg"], gt["semseg"])
        rows["semseg"] = {k: v for k, v in s.compute().items() if k != "iou_per_class"}
        e = edge_f1(rec["canny_edge"], gt["canny_edge"])
        rows["canny_edge"] = {"f1": e["f1"], "precision": e["precision"], "recall": e["recall"]}
        return {"model": rows, "baseline": {}}
    raise ValueError(f"unknown task {task!r}")


def write_json(result: EvalResult, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """metrics.json, atomically."""
    return write_text_atomic(path, json.dumps({**result.to_json(), **(extra or {})}, indent=2))
