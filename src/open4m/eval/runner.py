"""`open4m eval`: any model's any-to-any predictions on any labelled source, next to trivial baselines.

Samples are aligned, decoded dicts (arrays, texts, JSON keyed by modality): what the `aligned` sources
give (`open4m.sources.build_source(spec, family="aligned")`: `world` / `world:SIZE` renders scenes of
the procedural world; a folder `DIR/rgb/<name>.<ext>` + `DIR/depth/`, `DIR/normal/`, `DIR/semseg/`,
`DIR/det/`, `DIR/caption/` in the codecs of `open4m.data.codecs`, as `open4m synth` writes it or as you
label your own photos; shards). The model is anything `open4m.eval.models.EvalModel.load` takes: a
world model folder (the shipped one by default), a released name, a Hub id, a model folder, a FourM or
a `Pipeline`; every prediction runs through `Pipeline`, one per target spec.

Photos may come at any size, each its own: the RGB is resized to the model's input (bicubic, as
`Pipeline` does), and dense predictions are resized back to each ground truth's size (bilinear depth
and normals, nearest classes), so every metric is computed at the resolution of the labels.

A task is scored on the samples that hold its ground truth (all of them, or the ones that do: the
table says how many) when the model has its modalities (e.g. RGB pixels in, depth tokens out); the
others are skipped with the reason (`EvalResult.skipped`: the data lacks it, the model lacks it, the
labels cannot be read as the task needs). Every task reports the model next to trivial baselines
computed from the evaluation set itself (`open4m.eval.scoring.BASELINES`); for caption -> RGB the
generated image is read back by the model's own RGB -> boxes and compared with the caption's scene,
and the baseline reads back the generated images of *other* scenes.
"""

from __future__ import annotations

import difflib

import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .scoring import VOID, caption_references, edge_f1, metadata_error, resize, score
from ..atomic import write_text_atomic
from ..errors import ConfigError, DataError, NotFound

__all__ = ["TASKS", "HEADLINE", "TABLE_METRICS", "EvalResult", "evaluate", "bootstrap_interval", "load_samples",
           "load_folder", "parse_tasks", "unscorable", "write_json", "edge_f1", "metadata_error", "read_back_shapes",
           "input_tokens"]

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("depth", "normal", "semseg", "edges", "det", "caption", "palette", "metadata",
                          "recon", "caption2rgb", "depthcaption2rgb")
# Headline number of each task and whether higher is better (for the table and the quality floor).
HEADLINE: dict[str, tuple[str, bool]] = {
    "depth": ("abs_rel", False), "normal": ("mean_deg", False), "semseg": ("miou", True), "edges": ("f1", True),
    "det": ("map_50", True), "caption": ("count_acc", True), "palette": ("distance", False),
    "metadata": ("mae", False), "caption2rgb": ("shape_f1", True), "depthcaption2rgb": ("psnr", True),
}
# The rows of the table per task (those the task's results hold): depth's `scaled_*` are median-scaled per image.
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "depth": ("abs_rel", "scaled_abs_rel", "scaled_delta1"), "normal": ("mean_deg", "within_11.25"),
    "semseg": ("miou",), "edges": ("f1",), "det": ("map_50_95", "map_50"), "caption": ("bleu4", "cider_d", "count_acc"),
    "palette": ("distance",), "metadata": ("mae",), "caption2rgb": ("shape_f1", "shape_f1_one"),
    "depthcaption2rgb": ("psnr", "psnr_samples", "psnr_sample"),
}
#: Caption -> RGB draws per scene (seeds 0..N-1), each read back: one draw's shape F1 swung from 0.34 to 0.46 on
#: the same 64 scenes with the batch it was drawn in (docs/results.md), so the headline is the mean over draws.
CAPTION_RGB_DRAWS = 4
#: depth + caption -> RGB is scored by PSNR, which rewards the least-squares estimate (a single sample must commit
#: to a floor colour the caption never states): `psnr` scores the model's posterior mean, the mean of
#: `RGB_ESTIMATE_DRAWS` grids drawn from its per-token distributions (`Pipeline.estimate`, seed 0);
#: `psnr_samples` the pixel mean of `RGB_SAMPLES` MaskGIT samples (seeds 0..N-1; the headline before 2026-12-06,
#: biased by MaskGIT's most-confident-first commitment, docs/results.md), `psnr_sample` the first sample alone.
RGB_SAMPLES = 8
RGB_ESTIMATE_DRAWS = 64
# RGB -> an image modality (task -> the data's key, also the tokenizer's image modality) and RGB -> a text.
IMAGE_TASKS: dict[str, str] = {"depth": "depth", "normal": "normal", "semseg": "semseg", "edges": "canny_edge"}
TEXT_TASKS: dict[str, str] = {"det": "det", "caption": "caption", "palette": "color_palette", "metadata": "metadata"}
# The ground truth each task reads from every sample.
DATA_KEYS: dict[str, tuple[str, ...]] = {
    "depth": ("rgb", "depth"), "normal": ("rgb", "normal"), "semseg": ("rgb", "semseg"), "edges": ("rgb", "canny_edge"),
    "det": ("rgb", "det"), "caption": ("rgb", "caption"), "palette": ("rgb", "color_palette"),
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
    if not names:
        raise ConfigError(f"no task named; choose from {', '.join(TASKS)} (or all)")
    if unknown:
        close = [c for t in unknown for c in difflib.get_close_matches(t, list(TASKS), n=1, cutoff=0.5)]
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown tasks {unknown}; {hint}choose from {', '.join(TASKS)} (or all)")
    return names


def load_samples(data: str | Path | None = None, *, limit: int = 64, split: str = "val",
                 image_size: int | None = None, caption_order: str = "random") -> list[dict[str, Any]]:
    """The first `limit` samples of an aligned source: `world` (scenes of `split` at `image_size`, default 128,
    captions in `caption_order`: pass the model's, `EvalModel.caption_order`, so it reads captions written
    the way it was trained), `world:SIZE`, a folder (`root/<modality>/<name>.<ext>`, as `open4m synth`
    writes), a shard root."""
    from ..sources import build_source

    if limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    source = build_source(str(data) if data else "world", family="aligned", num_samples=limit, split=split,
                          image_size=image_size, caption_order=caption_order)
    if hasattr(source, "__len__") and hasattr(source, "__getitem__"):
        samples = [source[i] for i in range(min(limit, len(source)))]
    else:
        samples = list(itertools.islice(iter(source), limit))
    if not samples:
        raise DataError(f"the data source {data!r} holds no samples")
    skipped = [f"{p} ({why})" for p, why in getattr(source, "corrupt_files", {}).items()]
    skipped += list(getattr(source, "unreadable", []))
    if skipped:  # scored without them: say which files, so the table's sample counts can be trusted
        log.warning("eval: skipped %d corrupt file(s): %s — replace or delete them and rerun", len(skipped),
                       "; ".join(skipped[:5]) + ("; ..." if len(skipped) > 5 else ""))
    return samples


def load_folder(root: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Samples from a folder dataset (`root/<modality>/<name>.<ext>`, as `open4m synth` writes)."""
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"eval data folder {root} does not exist; write one with `open4m synth --out {root} --split val`")
    return load_samples(f"folder:{root}", limit=limit or 2**31)


def _warn_stretched_labels(samples: Sequence[Mapping[str, Any]], keys: set[str]) -> None:
    """Warn about dense labels whose shape is not their photo's: predictions are resized to the label, so a
    label cut or padded to another aspect ratio is scored against a stretched prediction, without a word."""
    odd = []
    for sample in samples:
        if "rgb" not in sample:
            continue
        height, width = np.shape(sample["rgb"])[:2]
        for key in sorted(keys & set(sample)):
            h, w = np.shape(sample[key])[:2]
            if abs(h * width - w * height) > max(height, width, h, w):  # more than a pixel of rounding off
                odd.append(f"{key} of {sample.get('__key__', '?')} is {w}x{h}, its photo {width}x{height}")
    if odd:
        log.warning("eval: %d label(s) have another aspect ratio than their photo (%s); predictions are stretched to "
                    "them: check that they are aligned with the photos", len(odd), "; ".join(odd[:3])
                    + ("; ..." if len(odd) > 3 else ""))


# -- the runner -------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """Per task: `model` and `baseline` metric dicts in `metrics` (the task's first baseline), every
    baseline by name in `baselines`, the number of samples scored in `counts`; `predictions` keeps what
    the demo draws (one per scored sample, in order); `skipped` names each task that could not be scored
    and why."""

    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    predictions: dict[str, list[Any]] = field(default_factory=dict)
    num_samples: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        if self.baselines:
            out["baselines"] = clean({t: b for t, b in self.baselines.items() if b})
            out["samples_per_task"] = dict(self.counts)
        if self.intervals:
            out["intervals"] = clean(self.intervals)
        if self.skipped:
            out["skipped"] = dict(self.skipped)
        return out

    def table(self, title: str | None = None) -> str:
        """The model and every baseline per task and metric, the samples each task scored (`n`), what was
        skipped and why, and a legend naming the baselines; `title` heads it (default: the sample count)."""
        width = max([1] + [len(b) for b in self.baselines.values()])
        head = f"{'task':<18}{'n':>5}  {'metric':<16}{'model':>10}" + "".join(
            f"{f'baseline {i + 1}' if width > 1 else 'baseline':>12}" for i in range(width))
        rows = [title or f"{self.num_samples} samples", head, "-" * len(head)]
        for task, res in self.metrics.items():
            n = self.counts.get(task, self.num_samples)
            if task == "recon":
                for mod, vals in res["model"].items():
                    key = next(iter(vals))  # each row lists its headline metric first
                    rows.append(f"{'recon/' + mod:<18}{n:>5}  {key:<16}{vals[key]:>10.4f}")
                continue
            bases = list(self.baselines.get(task, {"baseline": res["baseline"]}).values())
            keys = [k for k in TABLE_METRICS.get(task, (HEADLINE[task][0],)) if k in res["model"]]
            for key in keys:
                cells = "".join(f"{_cell(b.get(key)):>12}" for b in bases)
                ci = self.intervals.get(task, {})
                span = f"  95% CI [{ci['low']:.4f}, {ci['high']:.4f}]" if ci.get("metric") == key else ""
                rows.append(f"{task:<18}{n:>5}  {key:<16}{_cell(res['model'].get(key)):>10}{cells}{span}")
        rows += [f"{task:<18}skipped: {why}" for task, why in self.skipped.items()]
        legend = [f"  {task:<18}" + ", ".join(f"{i + 1} = {name}" if width > 1 else name for i, name in enumerate(b))
                  for task, b in self.baselines.items() if b]
        if legend:
            rows += ["baselines (trivial predictors computed from this set):", *legend]
        if any(k.startswith("scaled_") for res in self.metrics.values() for k in res.get("model", {})):
            rows.append("scaled_*: each depth prediction times median(truth) / median(prediction) of its image "
                        "(valid pixels: truth > 0 and finite)")
        return "\n".join(rows)


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not math.isnan(value) else "-"


def _batches(samples: Sequence[Mapping[str, Any]], size: int) -> list[list[Mapping[str, Any]]]:
    return [list(samples[i:i + size]) for i in range(0, len(samples), size)]


def with_truth(task: str, samples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The samples that hold every ground truth `task` reads."""
    return [s for s in samples if all(k in s for k in DATA_KEYS[task])]


def unscorable(task: str, model: Any, samples: Sequence[Mapping[str, Any]]) -> str | None:
    """Why `task` cannot be scored for `model` (an `EvalModel`) on `samples` (None when it can): the data
    lacks its ground truth in every sample, the model lacks its modalities, or the labels are unusable."""
    scored = with_truth(task, samples)
    if not scored:
        absent = [k for k in DATA_KEYS[task] if not any(k in s for s in samples)]
        return f"the data lacks {', '.join(absent)}" if absent else f"no sample holds all of {', '.join(DATA_KEYS[task])}"
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
        for key in model.caption_rgb_chain:  # each link is drawn, then read as a condition
            finds = (model.image_modality, "tok_") if key in IMAGE_MODALITIES else (model.sequence_modality, "")
            need += [(f"a {finds[1]}{key} output", finds[0](key)),
                     (f"a {finds[1]}{key} input", finds[0](key, output=False))]
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
    return _unusable_labels(task, scored, model)


def _unusable_labels(task: str, samples: Sequence[Mapping[str, Any]], model: Any) -> str | None:
    """Why the ground truth of `task` cannot be scored as it is (None when it can)."""
    if task == "depth":
        with np.errstate(invalid="ignore"):
            if not any((np.isfinite(d) & (d > 0)).any() for d in (np.asarray(s["depth"], np.float64) for s in samples)):
                return "the data's depth has no valid pixel (> 0 and finite; 16-bit PNGs hold millimetres)"
    if task == "normal":
        if not any((np.linalg.norm(np.nan_to_num(np.asarray(s["normal"], np.float64)), axis=-1) > 0.5).any()
                   for s in samples):
            return "the data's normals are all zero (no surface)"
    if task == "semseg":
        classes = _num_classes(model)
        top = max(int(np.max(np.where(np.asarray(s["semseg"]) == VOID, 0, s["semseg"]))) for s in samples)
        if top >= classes:
            return (f"the data's semseg holds class {top} but the model's segmentation tokenizer knows {classes} "
                    f"classes (0..{classes - 1}; {VOID} is read as void)")
        if all((np.asarray(s["semseg"]) == VOID).all() for s in samples):
            return f"the data's semseg is void ({VOID}) everywhere"
    if task == "det":
        if not any(s["det"].get("instances") for s in samples if isinstance(s["det"], Mapping)):
            return "the data's det holds no boxes ({\"instances\": [{\"boxes\": [x0, y0, x1, y1], \"class_name\": ...}]})"
        coords = [v for s in samples for inst in s["det"]["instances"] for v in inst["boxes"]]
        if coords and (min(coords) < -0.01 or max(coords) > 1.01):
            return (f"the data's det boxes reach {max(coords):g}: write xmin, ymin, xmax, ymax divided by the image "
                    "width and height (4M's det boxes lie in [0, 1])")
    if task == "caption" and not any(caption_references(s["caption"]) for s in samples):
        return "the data's captions are all empty"
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
             progress: bool = True, on_step: Callable[[str], None] | None = None,
             resamples: int = 0) -> EvalResult:
    """Score `model` on aligned `samples` for each of `tasks` it can do (the others are skipped, with the reason).

    `model` is an `open4m.eval.models.EvalModel` or anything `EvalModel.load` takes (a world model folder,
    a released name, a Hub id, a model folder, a FourM, a `Pipeline`; None: the shipped world model).
    Each task is scored on the samples holding its ground truth. Samples may have any size: the RGB is
    resized to the model's input and dense predictions back to their ground truth. Predictions are
    greedy (MaskGIT, 4 steps for image targets); the generated RGB of caption -> RGB and depth + caption
    -> RGB is sampled at temperature 1 in 8 steps, seed 0 (depth + caption -> RGB: `psnr` scores the model's
    posterior mean, `RGB_ESTIMATE_DRAWS` draws from its per-token distributions; `psnr_samples` the pixel mean of
    `RGB_SAMPLES` MaskGIT samples, seeds 0..N-1; `psnr_sample` the first alone).

    With `resamples` > 0 each task's headline metric gets a 95% confidence interval over the samples: the
    percentile bootstrap of that many draws of the scored samples with replacement (seeded). A difference
    between two models, or a model and its baseline, is only worth reading where these do not overlap.
    Each draw scores the task again (baselines included): 100 draws of 100 scenes add about a minute.
    """
    from tqdm import tqdm

    from .models import EvalModel

    model = EvalModel.load(model)
    tasks = parse_tasks(list(tasks))
    if not samples:
        raise DataError("no samples to evaluate")
    _check_caption_order(model, samples, tasks)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if resamples < 0:
        raise ConfigError(f"resamples must be >= 0 (0: no confidence intervals), got {resamples}")
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
    subsets = {t: samples if t == "recon" else with_truth(t, samples) for t in runnable}
    for task, subset in subsets.items():
        if len(subset) < len(samples):
            log.info("eval: %s scored on the %d of %d samples that hold %s", task, len(subset), len(samples),
                     ", ".join(DATA_KEYS[task]))
    sizes = {np.shape(s["rgb"])[:2] for s in samples if "rgb" in s}
    if model.rgb and sizes - {(model.image_size, model.image_size)}:
        log.info("eval: rgb of %d size(s) resized to %dx%d (the model's input); dense predictions resized back to "
                 "each ground truth's size", len(sizes), model.image_size, model.image_size)
    _warn_stretched_labels(samples, {k for t in runnable for k in DATA_KEYS[t]} & set(IMAGE_TASKS.values()))
    bar = tqdm(total=sum(math.ceil(len(s) / batch_size) for s in subsets.values()), desc="eval", unit="batch",
               disable=not progress)
    for task in runnable:
        out: list[Any] = []
        for chunk in _batches(subsets[task], batch_size):
            out.extend(_predict(task, model, chunk))
            bar.update(1)
            if on_step:
                on_step(task)
        result.predictions[task] = out
        fitted = _fitted(task, out, subsets[task])
        scores, baselines = score(task, fitted, subsets[task], _num_classes(model))
        result.metrics[task] = {"model": scores, "baseline": next(iter(baselines.values()), {})}
        interval = bootstrap_interval(task, fitted, subsets[task], _num_classes(model), resamples)
        if interval:
            result.intervals[task] = interval
        result.baselines[task] = baselines
        result.counts[task] = len(subsets[task])
    bar.close()
    return result


def bootstrap_interval(task: str, preds: Sequence[Any], samples: Sequence[Mapping[str, Any]], num_classes: int,
                       resamples: int, seed: int = 0, level: float = 0.95) -> dict[str, Any] | None:
    """The percentile-bootstrap interval of `task`'s headline metric over `samples` (None when the task has
    no headline metric, or there are fewer than 2 samples or no resamples).

    Dataset-level metrics (mIoU, mAP, CIDEr) are recomputed on each resampled set rather than averaged
    per sample, so the interval is that of the number the table reports.
    """
    if task not in HEADLINE or resamples < 1 or len(samples) < 2:
        return None
    key = HEADLINE[task][0]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(samples), len(samples))
        value = score(task, [preds[i] for i in idx], [samples[i] for i in idx], num_classes)[0].get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            values.append(float(value))
    if not values:
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"metric": key, "low": float(low), "high": float(high), "level": level, "resamples": resamples}


def _num_classes(model: Any) -> int:
    """The number of segmentation classes the model's semseg tokenizer knows (0 without one)."""
    name = model.image_modality("semseg") or model.image_modality("semseg", output=False)
    tok = model.base.tokenizer(name, required=False) if name else None
    return model.forms.num_classes(tok) if tok is not None else 0


def _side(model: Any, name: str) -> int:
    """The image side modality `name` of the model works at."""
    return model.model.modality_info[name].image_size or model.image_size


def read_back_shapes(model: Any, images: Sequence[np.ndarray],
                     samples: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Caption -> RGB's scores of `images` (uint8, any size) as if the model had drawn them from `samples`'
    captions, and of the baseline (another scene's image): the shapes of the boxes the model reads back against
    each scene's visible shapes. How to ask what an image shows the model, be it a photo, a tokenizer's round
    trip or a draw under other sampling settings (benchmarks/rgb_tokenizer_probe.py, world_diagnosis.py)."""
    rgb = np.stack(_at(model, "rgb", list(images), model.rgb))
    scores, baselines = score("caption2rgb", _with_boxes_read(model, rgb), samples, _num_classes(model))
    return scores, next(iter(baselines.values()))


def _with_boxes_read(model: Any, rgb: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Each image (at the model's side) with the boxes the model reads from it: what caption -> RGB scores."""
    return list(zip(rgb, model.texts("det", {model.rgb: rgb})))


def _at(model: Any, base: str, values: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    """The data's arrays of `base` resized to the side of the model's modality `name`."""
    side = _side(model, name)
    return [resize(v, (side, side), base) for v in values]


# The tasks that read the data's captions (as references or as conditions): the others ignore their order.
CAPTION_TASKS = ("caption", "caption2rgb", "depthcaption2rgb")


def _check_caption_order(model: Any, samples: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> None:
    """Warn when a model trained on left-to-right captions is given captions in another order (a folder written
    by `open4m synth` without `--caption-order`) by a task that reads them: its captions and its generation
    from them are then scored on captions unlike the ones it learnt from. Only samples with a scene graph can
    be checked."""
    from ..data.synthetic.captions import lists_left_to_right

    reading = [t for t in tasks if t in CAPTION_TASKS]
    if model.caption_order != "left_to_right" or not reading:
        return
    verdicts = []
    for s in samples:
        try:
            verdicts.append(lists_left_to_right(s["caption"], s["scene_graph"]))
        except (KeyError, TypeError, IndexError, AttributeError):  # no caption, or a scene graph not of the world
            continue
    other = verdicts.count(False)
    if other:
        log.warning("eval: %d of %d captions do not list their objects left to right, the order %s was trained on; "
                    "%s: scored on captions unlike its training ones. Write the data with "
                    "`open4m synth --caption-order left_to_right` (or `load_samples(..., caption_order=model."
                    "caption_order)`)", other, len(verdicts), model.name, ", ".join(reading))


def _predict(task: str, model: Any, chunk: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The model's predictions for one batch of samples, in the data's form (at the model's size)."""
    if task == "recon":
        bases = _recon_bases(model, chunk)
        rec = {}
        for b in bases:
            name = model.image_modality(b) or model.image_modality(b, output=False)
            rec[b] = model.round_trip(b, _at(model, b, [s[b] for s in chunk], name))
        return [{b: rec[b][i] for b in bases} for i in range(len(chunk))]
    if task == "caption2rgb":  # per scene: CAPTION_RGB_DRAWS (image, boxes read back) pairs, seeds 0..N-1
        captions = [s["caption"] for s in chunk]
        draws = [_with_boxes_read(model, _rgb_from(model, captions, seed=k)) for k in range(CAPTION_RGB_DRAWS)]
        return [list(scene) for scene in zip(*draws)]
    if task == "depthcaption2rgb":  # per scene: the estimate (H, W, 3) and the samples (RGB_SAMPLES, H, W, 3)
        inputs = _rgb_inputs(model, [s["caption"] for s in chunk], [s["depth"] for s in chunk])
        draws = _rgb_draws(model, inputs, RGB_SAMPLES)
        estimate = model.image_estimate("rgb", inputs, draws=RGB_ESTIMATE_DRAWS)
        return [{"estimate": e, "samples": d} for e, d in zip(estimate, draws)]
    rgb = {model.rgb: np.stack(_at(model, "rgb", [s["rgb"] for s in chunk], model.rgb))}
    if task in IMAGE_TASKS:
        return list(model.image(IMAGE_TASKS[task], rgb))
    if task == "det":
        return model.boxes(rgb)
    return model.texts(TEXT_TASKS[task], rgb)


def _rgb_from(model: Any, captions: Sequence[str], *, seed: int = 0, steps: int = 8, temperature: float = 1.0,
              scheme: str | None = None) -> np.ndarray:
    """One RGB draw per scene from captions, through the model's caption -> RGB chain (its links and the RGB drawn
    from `seed`, with the guidance its spec gives): MaskGIT (or `scheme`), 8 steps, temperature 1 by default."""
    inputs = chained(model, _rgb_inputs(model, captions), model.caption_rgb_chain, seed=seed)
    return model.image("rgb", inputs, steps=steps, temperature=temperature, seed=seed, scheme=scheme,
                       cfg=model.caption_rgb_cfg(inputs))


def _rgb_draws(model: Any, inputs: Mapping[str, Any], count: int, *, steps: int = 8,
               temperature: float = 1.0, scheme: str | None = None) -> np.ndarray:
    """`count` RGB samples per scene from `_rgb_inputs` conditions (tokenized once), seeds 0..count-1: MaskGIT
    (or `scheme`), 8 steps, temperature 1 by default -> (B, count, H, W, 3)."""
    return np.stack([model.image("rgb", inputs, steps=steps, temperature=temperature, seed=k, scheme=scheme)
                     for k in range(count)], axis=1)


def _rgb_inputs(model: Any, captions: Sequence[str], depth: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """The conditions of caption (+ depth) -> RGB: the captions as the model reads them, the depth maps as tokens."""
    inputs: dict[str, Any] = {model.sequence_modality("caption", output=False): model.text_condition("caption", captions)}
    if depth is not None:
        name, inputs[name] = input_tokens(model, "depth", depth)
    return inputs


def draw_link(model: Any, key: str, inputs: Mapping[str, Any], seed: int = 0) -> list[str] | np.ndarray:
    """One link of a chain: world key `key` drawn from `inputs` at temperature 1 (maps in 8 MaskGIT steps,
    sequences autoregressive), as the data's values (arrays, texts)."""
    if key in IMAGE_MODALITIES:
        return model.image(key, dict(inputs), steps=8, temperature=1.0, seed=seed)
    return model.texts(key, dict(inputs), temperature=1.0, seed=seed)


def add_condition(model: Any, key: str, values: list[str] | np.ndarray, inputs: dict[str, Any]) -> None:
    """Add the data's `values` of world key `key` (maps or texts, one per scene) to `inputs` as a condition."""
    if key in IMAGE_MODALITIES:
        name, inputs[name] = input_tokens(model, key, values)
    else:
        inputs[model.sequence_modality(key, output=False)] = model.text_condition(key, values)


def chained(model: Any, inputs: Mapping[str, Any], chain: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """`inputs` with each key of `chain` drawn in turn from all before it and added (chained generation)."""
    inputs = dict(inputs)
    for key in chain:
        add_condition(model, key, draw_link(model, key, inputs, seed), inputs)
    return inputs


def input_tokens(model: Any, base: str, maps: Sequence[np.ndarray]) -> tuple[str, Any]:
    """The data's maps of image modality `base` as a condition: the model's input modality and its token ids."""
    name = model.image_modality(base, output=False)
    return name, model.image_tokens(base, _at(model, base, list(maps), name), name)


def _fitted(task: str, preds: list[Any], samples: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Dense predictions resized to their ground truth's size where the model works at another size."""
    if task == "depthcaption2rgb":  # {"estimate": image, "samples": stack}, each resized to its truth
        def fit(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
            return np.stack([resize(d, shape, "rgb") for d in a]) if np.ndim(a) == 4 else resize(a, shape, "rgb")

        return [{k: fit(v, np.shape(s["rgb"])[:2]) for k, v in p.items()} for p, s in zip(preds, samples)]
    key = IMAGE_TASKS.get(task)
    if key is None:
        return preds
    return [resize(p, np.shape(s[key])[:2], key) for p, s in zip(preds, samples)]


def write_json(result: EvalResult, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """metrics.json, atomically."""
    return write_text_atomic(path, json.dumps({**result.to_json(), **(extra or {})}, indent=2))
