"""Task metrics for any-to-any predictions: dense geometry, segmentation, boxes, captions, palettes, reconstruction.

Each metric is an accumulator: `update()` per sample (or batch), `compute()` at the end, so a whole
evaluation set is scored exactly (segmentation IoU from one confusion matrix, box AP from every
detection of every image) rather than as a mean of per-image scores. Inputs may be numpy arrays or
torch tensors; everything is computed in float64 numpy.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ConfigError, DataError


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_same_shape(pred: np.ndarray, gt: np.ndarray, what: str) -> None:
    if pred.shape != gt.shape:
        raise DataError(f"{what}: prediction shape {pred.shape} differs from ground truth {gt.shape}; resize the "
                        "prediction to the ground truth first")


@dataclass
class DepthMetrics:
    """abs-rel, RMSE and threshold accuracies (delta < 1.25^k) over valid pixels (gt > 0 and finite).

    `align="median"` rescales each prediction by median(gt)/median(pred) over the valid pixels of
    that `update()` call first — per-image median scaling when called once per image, the standard
    protocol for predictions known only up to scale (standardised depth tokens, a model that never
    saw the camera). Every valid pixel counts once: the set's abs-rel is a pixel mean, not a mean of
    per-image means.
    """

    align: str | None = None
    _abs_rel: float = 0.0
    _sq: float = 0.0
    _deltas: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _n: int = 0

    def update(self, pred: Any, gt: Any, valid: Any | None = None) -> None:
        pred, gt = _np(pred), _np(gt)
        _check_same_shape(pred, gt, "depth")
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(gt) & (gt > 0)
        if valid is not None:
            mask &= _np(valid) > 0
        p, g = pred[mask], gt[mask]
        p = np.where(np.isfinite(p), p, 1e-6)  # a non-finite prediction is as wrong as it gets
        if p.size == 0:
            return
        if self.align == "median":
            p = p * (np.median(g) / max(np.median(p), 1e-8))
        elif self.align is not None:
            raise ConfigError(f"DepthMetrics align={self.align!r} is unknown; use align=None or align='median'")
        p = np.maximum(p, 1e-6)
        self._abs_rel += float(np.sum(np.abs(p - g) / g))
        self._sq += float(np.sum((p - g) ** 2))
        ratio = np.maximum(p / g, g / p)
        self._deltas += [(ratio < 1.25 ** k).sum() for k in (1, 2, 3)]
        self._n += p.size

    def compute(self) -> dict[str, float]:
        if self._n == 0:
            raise DataError("no valid depth pixels were scored; update() with ground truth that has depth > 0 "
                            "(and a `valid` mask that keeps some pixels) before compute()")
        d = self._deltas / self._n
        return {"abs_rel": self._abs_rel / self._n, "rmse": float(np.sqrt(self._sq / self._n)),
                "delta1": float(d[0]), "delta2": float(d[1]), "delta3": float(d[2])}


@dataclass
class NormalMetrics:
    """Angular error between unit normals (H, W, 3): mean, median and % within 11.25 / 22.5 / 30 degrees."""

    _errors: list = field(default_factory=list)

    def update(self, pred: Any, gt: Any, valid: Any | None = None) -> None:
        pred, gt = _np(pred), _np(gt)
        _check_same_shape(pred, gt, "normals")
        if pred.shape[-1] != 3:
            raise DataError(f"normals must be (..., 3), got {pred.shape}; put the xyz channels last "
                            "(e.g. x.permute(1, 2, 0))")
        pn = pred / np.maximum(np.linalg.norm(pred, axis=-1, keepdims=True), 1e-8)
        gn = gt / np.maximum(np.linalg.norm(gt, axis=-1, keepdims=True), 1e-8)
        err = np.nan_to_num(np.degrees(np.arccos(np.clip((pn * gn).sum(-1), -1.0, 1.0))), nan=180.0)
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(gt).all(-1) & (np.linalg.norm(gt, axis=-1) > 0.5)  # zero normals: no surface
        if valid is not None:
            mask &= _np(valid) > 0
        self._errors.append(err[mask].astype(np.float32))

    def compute(self) -> dict[str, float]:
        err = np.concatenate(self._errors) if self._errors else np.zeros(0)
        if err.size == 0:
            raise DataError("no valid normal pixels were scored; update() with at least one valid pixel "
                            "before compute()")
        return {"mean_deg": float(err.mean()), "median_deg": float(np.median(err)),
                "within_11.25": float((err < 11.25).mean()), "within_22.5": float((err < 22.5).mean()),
                "within_30": float((err < 30).mean())}


@dataclass
class SegmentationMetrics:
    """mIoU and pixel accuracy from one confusion matrix over the whole set.

    mIoU averages over the classes present: those that occur in the ground truth or the predictions
    of the whole set (a class only predicted scores IoU 0, a class nowhere is left out);
    `ignore_index` pixels (e.g. 255, "void") are skipped.
    """

    num_classes: int
    ignore_index: int | None = None
    _conf: np.ndarray | None = None

    def update(self, pred: Any, gt: Any) -> None:
        pred, gt = _np(pred).astype(np.int64), _np(gt).astype(np.int64)
        _check_same_shape(pred, gt, "segmentation")
        mask = np.ones_like(gt, dtype=bool) if self.ignore_index is None else gt != self.ignore_index
        p, g = pred[mask], gt[mask]
        if ((p < 0) | (p >= self.num_classes) | (g < 0) | (g >= self.num_classes)).any():
            raise DataError(f"class ids must lie in [0, {self.num_classes}), got [{int(min(p.min(), g.min()))}, "
                            f"{int(max(p.max(), g.max()))}]; set num_classes (or ignore_index) to match the labels")
        conf = np.bincount(g * self.num_classes + p, minlength=self.num_classes ** 2)
        conf = conf.reshape(self.num_classes, self.num_classes)
        self._conf = conf if self._conf is None else self._conf + conf

    def compute(self) -> dict[str, Any]:
        if self._conf is None or self._conf.sum() == 0:
            raise DataError("no segmentation pixels were scored; update() with labels that are not all ignore_index "
                            "before compute()")
        conf = self._conf.astype(np.float64)
        tp = np.diag(conf)
        union = conf.sum(0) + conf.sum(1) - tp
        present = union > 0
        iou = np.where(present, tp / np.maximum(union, 1), np.nan)
        return {"miou": float(np.nanmean(iou)), "pixel_acc": float(tp.sum() / conf.sum()),
                "iou_per_class": [None if np.isnan(v) else float(v) for v in iou]}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


@dataclass
class BoxAP:
    """Box mAP as COCO defines it (its `bbox` evaluation, area `all`, no crowd boxes).

    Predictions are (box xyxy, class name, score); ground truths (box, class name); any coordinate
    unit works (IoU is scale-free). Per class and IoU threshold: each image keeps its `max_dets`
    highest-scoring detections of the class; detections of the whole set are taken by descending score, each
    matched to the unmatched ground truth of its image and class it overlaps most, if that IoU is
    >= the threshold (a true positive), else a false positive; precision is made monotone
    (the running maximum from high recall down) and read at the 101 recalls 0, 0.01, ..., 1 (0 past
    the highest recall reached); AP is their mean. `map_50_95` averages AP over the classes and the
    ten thresholds 0.50:0.05:0.95, `map_50` over the classes at 0.5. Classes without ground truth in
    the whole set are left out of the means (their detections are false positives nowhere), a class
    with ground truth but no detection scores 0, as in COCO.
    """

    thresholds: tuple[float, ...] = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))
    max_dets: int = 100
    _dets: dict = field(default_factory=dict)  # class -> list of (score, image, box)
    _gts: dict = field(default_factory=dict)  # class -> {image: boxes}
    _images: int = 0

    def update(self, preds: Iterable[tuple[Sequence[float], str, float]],
               gts: Iterable[tuple[Sequence[float], str]]) -> None:
        img = self._images
        self._images += 1
        per_class: dict[str, list] = {}
        for box, cls, score in sorted(preds, key=lambda d: -float(d[2])):  # stable: ties keep their order
            per_class.setdefault(cls, []).append((float(score), img, np.asarray(box, np.float64)))
        for cls, dets in per_class.items():
            self._dets.setdefault(cls, []).extend(dets[:self.max_dets])
        for box, cls in gts:
            self._gts.setdefault(cls, {}).setdefault(img, []).append(np.asarray(box, np.float64))

    def _ap(self, cls: str, thr: float) -> float:
        gts = {img: np.stack(b) for img, b in self._gts[cls].items()}
        used = {img: np.zeros(len(b), bool) for img, b in gts.items()}
        n_gt = sum(len(b) for b in gts.values())
        dets = sorted(self._dets.get(cls, []), key=lambda d: -d[0])
        tp = np.zeros(len(dets))
        for k, (_, img, box) in enumerate(dets):
            if img not in gts:
                continue
            ious = box_iou(box[None], gts[img])[0]
            ious[used[img]] = -1
            j = int(np.argmax(ious))
            if ious[j] >= thr:
                used[img][j] = True
                tp[k] = 1
        if not len(dets):
            return 0.0
        ctp = np.cumsum(tp)
        recall = ctp / n_gt
        precision = ctp / np.arange(1, len(dets) + 1)
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
        points = np.linspace(0, 1, 101)
        idx = np.searchsorted(recall, points, side="left")
        return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))

    def compute(self) -> dict[str, float]:
        classes = sorted(self._gts)
        if not classes:
            raise DataError("no ground-truth boxes were given; update() with at least one image that has boxes "
                            "before compute()")
        table = np.array([[self._ap(c, t) for t in self.thresholds] for c in classes])
        i50 = int(np.argmin(np.abs(np.asarray(self.thresholds) - 0.5)))
        return {"map_50": float(table[:, i50].mean()), "map_50_95": float(table.mean()),
                "ap_50_per_class": dict(zip(classes, table[:, i50].round(4).tolist()))}


_WORD = re.compile(r"[a-z0-9]+")


def caption_words(text: str) -> list[str]:
    """Lower-cased words with punctuation dropped: what caption metrics compare (COCO's evaluation
    tokenizes the same way before scoring, with the PTB tokenizer)."""
    return _WORD.findall(str(text).lower())


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


@dataclass
class CaptionMetrics:
    """Corpus BLEU-4 and CIDEr-D of generated captions against one or more references per image.

    - `bleu4` (Papineni et al. 2002, as COCO's caption evaluation computes it): clipped n-gram
      precisions for n = 1..4 pooled over the whole set, their geometric mean, times the brevity
      penalty exp(1 - r/c) when the candidates' total length c is below r, the sum over images of
      the reference length closest to each candidate's (the shorter on ties). 0 when some order has
      no match.
    - `cider_d` (Vedantam et al. 2015, the "-D" variant COCO reports): per order n = 1..4, each
      caption is a vector of n-gram counts times idf = log(images / images whose references hold
      the n-gram); the candidate's counts are clipped at each reference's, the cosine-like
      similarity min(c, r)·r / (|c| |r|) is damped by exp(-(len_c - len_r)^2 / 72) (words), averaged
      over references and orders, times 10, then averaged over images. Document frequencies come
      from the references of the set itself, so a set whose images share all their n-grams scores 0.
    """

    _items: list = field(default_factory=list)  # (candidate words, [reference words, ...])

    def update(self, candidate: str, references: str | Sequence[str]) -> None:
        refs = [references] if isinstance(references, str) else list(references)
        refs = [caption_words(r) for r in refs]
        if not any(refs):
            raise DataError("a caption needs at least one non-empty reference; pass the ground-truth text(s)")
        self._items.append((caption_words(candidate), [r for r in refs if r]))

    def compute(self) -> dict[str, float]:
        if not self._items:
            raise DataError("no captions were scored; call update(candidate, references) first")
        return {"bleu4": self._bleu(4), "cider_d": self._cider_d()}

    def _bleu(self, order: int) -> float:
        matches, totals = np.zeros(order), np.zeros(order)
        cand_len = ref_len = 0
        for cand, refs in self._items:
            cand_len += len(cand)
            ref_len += min((len(r) for r in refs), key=lambda n: (abs(n - len(cand)), n))
            for n in range(1, order + 1):
                best: Counter = Counter()
                for r in refs:
                    best |= _ngrams(r, n)  # per n-gram, the largest count of any reference
                got = _ngrams(cand, n)
                matches[n - 1] += sum(min(c, best[g]) for g, c in got.items())
                totals[n - 1] += sum(got.values())
        if cand_len == 0 or (matches == 0).any():
            return 0.0
        brevity = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / cand_len)
        return float(brevity * math.exp(np.mean(np.log(matches / totals))))

    def _cider_d(self, order: int = 4, sigma: float = 6.0) -> float:
        df: Counter = Counter()
        for _, refs in self._items:
            df.update({g for r in refs for n in range(1, order + 1) for g in _ngrams(r, n)})
        log_n = math.log(len(self._items))

        def vectors(words: Sequence[str]) -> list[tuple[dict, float]]:
            out = []
            for n in range(1, order + 1):
                vec = {g: c * (log_n - math.log(max(1.0, df[g]))) for g, c in _ngrams(words, n).items()}
                out.append((vec, math.sqrt(sum(v * v for v in vec.values()))))
            return out

        scores = []
        for cand, refs in self._items:
            cv = vectors(cand)
            per_ref = []
            for ref in refs:
                damp = math.exp(-((len(cand) - len(ref)) ** 2) / (2 * sigma ** 2))
                sims = []
                for (c, c_norm), (r, r_norm) in zip(cv, vectors(ref)):
                    dot = sum(min(v, r.get(g, 0.0)) * r.get(g, 0.0) for g, v in c.items())
                    sims.append(dot / (c_norm * r_norm) * damp if c_norm > 0 and r_norm > 0 else 0.0)
                per_ref.append(np.mean(sims))
            scores.append(10.0 * float(np.mean(per_ref)))
        return float(np.mean(scores))


def palette_distance(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]]) -> float:
    """Mean RGB distance (0..255 scale) under the best one-to-one matching of colors.

    Unequal lengths: the shorter list is matched into the longer one, and each unmatched color
    costs the distance to its nearest counterpart, so missing or extra colors are penalised.
    """
    p, g = np.asarray(pred, np.float64).reshape(-1, 3), np.asarray(gt, np.float64).reshape(-1, 3)
    if len(p) == 0 or len(g) == 0:
        raise DataError("palette_distance needs at least one color on each side; pass non-empty (N, 3) palettes")
    if len(p) > 8 or len(g) > 8:
        raise DataError(f"palettes hold at most 8 colors here (4M uses up to 7), got {len(p)} and {len(g)}; "
                         "pass shorter palettes")
    small, large = (p, g) if len(p) <= len(g) else (g, p)
    cost = np.linalg.norm(small[:, None] - large[None], axis=-1)
    best = min(itertools.permutations(range(len(large)), len(small)),
               key=lambda perm: cost[np.arange(len(small)), list(perm)].sum())
    matched = cost[np.arange(len(small)), list(best)]
    unmatched = [cost[:, j].min() for j in range(len(large)) if j not in best]
    return float(np.concatenate([matched, unmatched]).mean())


def reconstruction_metrics(pred: Any, gt: Any, data_range: float = 2.0) -> dict[str, float]:
    """MSE, L1 and PSNR of a reconstruction (default range 2: tensors in [-1, 1])."""
    pred, gt = _np(pred), _np(gt)
    _check_same_shape(pred, gt, "reconstruction")
    mse = float(np.mean((pred - gt) ** 2))
    return {"mse": mse, "l1": float(np.mean(np.abs(pred - gt))),
            "psnr": float(10 * np.log10(data_range ** 2 / max(mse, 1e-12)))}
