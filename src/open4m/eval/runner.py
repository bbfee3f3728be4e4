"""`open4m eval`: any model's any-to-any predictions on any labelled source, next to trivial baselines.

Samples are aligned, decoded dicts (arrays, texts, JSON keyed by modality): what the `aligned` sources
give (`open4m.sources.build_source(spec, family="aligned")`: `world` / `world:SIZE` renders scenes of
the procedural world, a folder as `open4m synth` writes it, shards). The model is anything
`open4m.eval.models.EvalModel.load` takes: a world model folder (the shipped one by default), a released
name, a Hub id, a model folder, a FourM or a `Pipeline`; every prediction runs through `Pipeline`, one
per target spec. A task is scored when the model has its modalities (e.g. RGB pixels in, depth tokens
out) and every sample has its ground truth; the others are skipped with the reason
(`EvalResult.skipped`).

Every task reports the model next to a trivial predictor computed from the evaluation set itself
(so the baseline is, if anything, flattered): a constant map at the mean depth, the mean normal, the
majority class, no boxes, one constant caption, the mean palette, the mean metadata, no edges. For
caption -> RGB the generated image is read back by the model's own RGB -> boxes and compared with the
caption's scene; the baseline reads back the generated images of *other* scenes, which shows how much
of the caption the generated image carries.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .captions import SceneCaptionMetrics
from ..metrics import BoxAP, DepthMetrics, NormalMetrics, SegmentationMetrics, palette_distance, reconstruction_metrics
from ..atomic import write_text_atomic
from ..errors import ConfigError, DataError, NotFound, UnknownNameError

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("depth", "normal", "semseg", "edges", "det", "caption", "palette", "metadata",
                          "recon", "caption2rgb", "depthcaption2rgb")
# Headline number of each task and whether higher is better (for the table and the quality floor).
HEADLINE: dict[str, tuple[str, bool]] = {
    "depth": ("abs_rel", False), "normal": ("mean_deg", False), "semseg": ("miou", True), "edges": ("f1", True),
    "det": ("map_50", True), "caption": ("count_acc", True), "palette": ("distance", False),
    "metadata": ("mae", False), "caption2rgb": ("shape_f1", True), "depthcaption2rgb": ("psnr", True),
}
# RGB -> an image modality (task -> the data's key, also the tokenizer's image modality) and RGB -> a text.
IMAGE_TASKS: dict[str, str] = {"depth": "depth", "normal": "normal", "semseg": "semseg", "edges": "canny_edge"}
TEXT_TASKS: dict[str, str] = {"det": "det", "caption": "caption", "palette": "color_palette", "metadata": "metadata"}
# The ground truth each task reads from every sample.
DATA_KEYS: dict[str, tuple[str, ...]] = {
    "depth": ("rgb", "depth"), "normal": ("rgb", "normal"), "semseg": ("rgb", "semseg"), "edges": ("rgb", "canny_edge"),
    "det": ("rgb", "det"), "caption": ("rgb", "caption", "scene_graph"), "palette": ("rgb", "color_palette"),
    "metadata": ("rgb", "metadata"), "recon": (), "caption2rgb": ("caption", "scene_graph"),
    "depthcaption2rgb": ("rgb", "depth", "caption"),
}
IMAGE_MODALITIES: tuple[str, ...] = ("rgb", "depth", "normal", "semseg", "canny_edge")  # the order of recon rows


def parse_tasks(text: str | Sequence[str]) -> list[str]:
    """`"depth,normal"` or a list, or `all` -> validated task names."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if names == ["all"]:
        return list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise ConfigError(f"unknown tasks {unknown}; choose from {', '.join(TASKS)} (or all)")
    return names


def load_samples(data: str | Path | None = None, *, limit: int = 64, split: str = "val",
                 image_size: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` samples of an aligned source: `world` (scenes of `split` at `image_size`, default 128),
    `world:SIZE`, a folder (`root/<modality>/<name>.<ext>`, as `open4m synth` writes), a shard root."""
    from ..sources import build_source

    if limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    source = build_source(str(data) if data else "world", family="aligned", num_samples=limit, split=split,
                          image_size=image_size)
    if hasattr(source, "__len__") and hasattr(source, "__getitem__"):
        samples = [source[i] for i in range(min(limit, len(source)))]
    else:
        samples = list(itertools.islice(iter(source), limit))
    if not samples:
        raise DataError(f"the data source {data!r} holds no samples")
    return samples


def load_folder(root: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Samples from a folder dataset (`root/<modality>/<name>.<ext>`, as `open4m synth` writes)."""
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"eval data folder {root} does not exist; write one with `open4m synth --out {root} --split val`")
    return load_samples(f"folder:{root}", limit=limit or 2**31)


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
    """Per task: `model` and `baseline` metric dicts; `predictions` keeps what the demo draws; `skipped`
    names each task that could not be scored and why."""

    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    predictions: dict[str, list[Any]] = field(default_factory=dict)
    num_samples: int = 0
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, float) and math.isnan(v):
                return None
            return v
        out = {"num_samples": self.num_samples, "metrics": clean(self.metrics)}
        if self.skipped:
            out["skipped"] = dict(self.skipped)
        return out

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
        rows += [f"{task:<18}skipped: {why}" for task, why in self.skipped.items()]
        return "\n".join(rows)


def _batches(samples: Sequence[Mapping[str, Any]], size: int) -> list[list[Mapping[str, Any]]]:
    return [list(samples[i:i + size]) for i in range(0, len(samples), size)]


def unscorable(task: str, model: Any, samples: Sequence[Mapping[str, Any]]) -> str | None:
    """Why `task` cannot be scored for `model` (an `EvalModel`) on `samples` (None when it can)."""
    lacking = [k for k in DATA_KEYS[task] if not all(k in s for s in samples)]
    if lacking:
        some = any(k in s for k in lacking for s in samples)
        return f"the data lacks {', '.join(lacking)}" + (" in some samples" if some else "")
    if task == "recon":
        bases = _recon_bases(model, samples)
        return None if bases else "no image modality of the data has a tokenizer of the model"
    need = [] if task == "caption2rgb" else [("rgb pixels", model.rgb)]
    if task in IMAGE_TASKS:
        base = IMAGE_TASKS[task]
        target = model.image_modality(base)
        need.append((f"a tok_{base} output", target))
    elif task in TEXT_TASKS:
        need.append((f"a {TEXT_TASKS[task]} text output", model.sequence_modality(TEXT_TASKS[task])))
    elif task == "caption2rgb":
        need += [("a caption input", model.sequence_modality("caption", output=False)),
                 ("a tok_rgb output", model.image_modality("rgb")), ("rgb pixels", model.rgb),
                 ("a det text output", model.sequence_modality("det"))]
    elif task == "depthcaption2rgb":
        need = [("a caption input", model.sequence_modality("caption", output=False)),
                ("a tok_depth input", model.image_modality("depth", output=False)),
                ("a tok_rgb output", model.image_modality("rgb"))]
    missing = [what for what, name in need if name is None]
    if missing:
        return f"the model lacks {', '.join(missing)}"
    conversions = {"depth": [("depth", model.image_modality("depth"))],
                   "normal": [("normal", model.image_modality("normal"))],
                   "semseg": [("semseg", model.image_modality("semseg"))],
                   "edges": [("canny_edge", model.image_modality("canny_edge"))],
                   "caption2rgb": [("rgb", model.image_modality("rgb"))],
                   "depthcaption2rgb": [("depth", model.image_modality("depth", output=False)),
                                        ("rgb", model.image_modality("rgb"))]}.get(task, [])
    for base, name in conversions:
        why = model.unsupported(base, name)
        if why:
            return f"{name}: {why}"
    return None


def _recon_bases(model: Any, samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """The image modalities whose tokenizer round trip can be scored."""
    bases = []
    for base in IMAGE_MODALITIES:
        name = model.image_modality(base) or model.image_modality(base, output=False)
        if name and all(base in s for s in samples) and model.unsupported(base, name) is None:
            bases.append(base)
    return bases


def evaluate(model: Any, samples: Sequence[Mapping[str, Any]], tasks: Sequence[str] = TASKS, *, batch_size: int = 8,
             progress: bool = True, on_step: Callable[[str], None] | None = None) -> EvalResult:
    """Score `model` on aligned `samples` for each of `tasks` it can do (the others are skipped, with the reason).

    `model` is an `open4m.eval.models.EvalModel` or anything `EvalModel.load` takes (a world model folder,
    a released name, a Hub id, a model folder, a FourM, a `Pipeline`; None: the shipped world model).
    Predictions are greedy (MaskGIT, 4 steps for image targets); the generated RGB of caption -> RGB and
    depth + caption -> RGB is sampled at temperature 1 in 8 steps, seed 0.
    """
    from tqdm import tqdm

    from .models import EvalModel

    model = EvalModel.load(model)
    tasks = parse_tasks(list(tasks))
    if not samples:
        raise DataError("no samples to evaluate")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    result = EvalResult(num_samples=len(samples))
    for task in tasks:
        why = unscorable(task, model, samples)
        if why:
            result.skipped[task] = why
            log.warning("eval: %s skipped: %s", task, why)
    runnable = [t for t in tasks if t not in result.skipped]
    if not runnable:
        raise ConfigError(f"none of the tasks {tasks} can be scored for {model.name} on this data: "
                          + "; ".join(f"{t}: {why}" for t, why in result.skipped.items()))
    bar = tqdm(total=len(runnable) * math.ceil(len(samples) / batch_size), desc="eval", unit="batch",
               disable=not progress)
    for task in runnable:
        out: list[Any] = []
        for chunk in _batches(samples, batch_size):
            out.extend(_predict(task, model, chunk))
            bar.update(1)
            if on_step:
                on_step(task)
        result.predictions[task] = out
        result.metrics[task] = _score(task, _fitted(task, out, samples), samples, _num_classes(model))
    bar.close()
    return result


def _num_classes(model: Any) -> int:
    """The number of segmentation classes the model's semseg tokenizer knows (0 without one)."""
    name = model.image_modality("semseg") or model.image_modality("semseg", output=False)
    tok = model.base.tokenizer(name, required=False) if name else None
    return model.forms.num_classes(tok) if tok is not None else 0


def _predict(task: str, model: Any, chunk: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The model's predictions for one batch of samples, in the data's form."""
    if task == "recon":
        bases = _recon_bases(model, chunk)
        rec = {b: model.round_trip(b, [s[b] for s in chunk]) for b in bases}
        return [{b: rec[b][i] for b in bases} for i in range(len(chunk))]
    if task == "caption2rgb":
        gen = _rgb_from(model, [s["caption"] for s in chunk])
        return list(zip(gen, model.texts("det", {model.rgb: gen})))
    if task == "depthcaption2rgb":
        return list(_rgb_from(model, [s["caption"] for s in chunk], [s["depth"] for s in chunk]))
    rgb = {model.rgb: np.stack([s["rgb"] for s in chunk])}
    if task in IMAGE_TASKS:
        return list(model.image(IMAGE_TASKS[task], rgb))
    return model.texts(TEXT_TASKS[task], rgb)


def _rgb_from(model: Any, captions: Sequence[str], depth: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """RGB generated from captions (and depth maps): MaskGIT, 8 steps, temperature 1, seed 0."""
    inputs: dict[str, Any] = {model.sequence_modality("caption", output=False): model.text_condition("caption", captions)}
    if depth is not None:
        name = model.image_modality("depth", output=False)
        inputs[name] = model.image_tokens("depth", depth, name)
    return model.image("rgb", inputs, steps=8, temperature=1.0, seed=0)


def _fitted(task: str, preds: list[Any], samples: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Predicted maps resized to their ground truth's size where the model works at another size."""
    key = {**IMAGE_TASKS, "depthcaption2rgb": "rgb"}.get(task)
    if key is None or all(np.shape(p)[:2] == np.shape(s[key])[:2] for p, s in zip(preds, samples)):
        return preds
    return [_resize(p, np.shape(s[key])[:2], key) for p, s in zip(preds, samples)]


def _resize(value: np.ndarray, size: tuple[int, int], base: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.asarray(value, dtype=np.float32))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    nearest = base in ("semseg", "canny_edge")
    t = F.interpolate(t, size=size, mode="nearest" if nearest else "bilinear", align_corners=None if nearest else False)
    out = t[0, 0].numpy() if np.ndim(value) == 2 else t[0].permute(1, 2, 0).numpy()
    if base == "normal":
        out = out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-6)
    return out.round().astype(np.asarray(value).dtype) if np.issubdtype(np.asarray(value).dtype, np.integer) else out


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
        bases = [b for b in IMAGE_MODALITIES if preds and b in preds[0]]
        gt = {b: np.stack([s[b] for s in samples]) for b in bases}
        rec = {b: np.stack([p[b] for p in preds]) for b in bases}
        if "rgb" in bases:
            rgb = reconstruction_metrics(rec["rgb"].astype(np.float64) / 127.5 - 1, gt["rgb"].astype(np.float64) / 127.5 - 1)
            rows["rgb"] = {"psnr": rgb["psnr"], "mse": rgb["mse"]}
        if "depth" in bases:
            d = DepthMetrics()
            d.update(rec["depth"], gt["depth"])
            rows["depth"] = d.compute()
        if "normal" in bases:
            n = NormalMetrics()
            n.update(rec["normal"], gt["normal"])
            rows["normal"] = n.compute()
        if "semseg" in bases:
            s = SegmentationMetrics(max(num_classes, int(gt["semseg"].max()) + 1, int(rec["semseg"].max()) + 1))
            s.update(rec["semseg"], gt["semseg"])
            rows["semseg"] = {k: v for k, v in s.compute().items() if k != "iou_per_class"}
        if "canny_edge" in bases:
            e = edge_f1(rec["canny_edge"], gt["canny_edge"])
            rows["canny_edge"] = {"f1": e["f1"], "precision": e["precision"], "recall": e["recall"]}
        return {"model": rows, "baseline": {}}
    raise UnknownNameError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def write_json(result: EvalResult, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """metrics.json, atomically."""
    return write_text_atomic(path, json.dumps({**result.to_json(), **(extra or {})}, indent=2))
