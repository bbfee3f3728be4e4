"""Per task: the head it needs, its loss, and its metrics (accumulated over a whole validation set).

Metrics reuse `open4m.metrics` (mIoU / pixel accuracy from one confusion matrix; depth
abs-rel, RMSE and delta thresholds over valid pixels); classification adds top-1 / top-5.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ....errors import ConfigError, DataError
from ....metrics import DepthMetrics, SegmentationMetrics
from .recipe import TaskSection

MIN_DEPTH = 1e-3  # metres; log-depth predictions and targets are clamped here


class Objective:
    """Head shape, loss and metric accumulation of one downstream task."""

    head = "dense"

    def __init__(self, cfg: TaskSection, num_classes: int | None) -> None:
        self.cfg = cfg
        self.num_classes = num_classes

    @property
    def out_channels(self) -> int:
        return int(self.num_classes)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def new_metrics(self) -> Any:
        raise NotImplementedError

    def update(self, metrics: Any, output: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self, metrics: Any) -> dict[str, float]:
        raise NotImplementedError


class Classification(Objective):
    head = "classification"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output.float(), target, label_smoothing=self.cfg.label_smoothing)

    def new_metrics(self) -> dict[str, float]:
        return {"top1": 0.0, "top5": 0.0, "n": 0}

    def update(self, metrics: dict[str, float], output: torch.Tensor, target: torch.Tensor) -> None:
        k = min(5, output.shape[1])
        top = output.topk(k, dim=1).indices
        hits = top == target[:, None]
        metrics["top1"] += float(hits[:, 0].sum())
        metrics["top5"] += float(hits.any(dim=1).sum())
        metrics["n"] += target.shape[0]

    def compute(self, metrics: dict[str, float]) -> dict[str, float]:
        return {"top1": metrics["top1"] / metrics["n"], "top5": metrics["top5"] / metrics["n"]}


class Segmentation(Objective):
    def _check(self, target: torch.Tensor) -> None:
        scored = target[target != self.cfg.ignore_index]
        if scored.numel() and (int(scored.min()) < 0 or int(scored.max()) >= self.num_classes):
            raise DataError(f"segmentation labels span {int(scored.min())}..{int(scored.max())} but "
                            f"task.num_classes={self.num_classes}; set task.num_classes, task.ignore_index or "
                            "data.reduce_zero_label to match the data")

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(target)
        return F.cross_entropy(output.float(), target, ignore_index=self.cfg.ignore_index)

    def new_metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(self.num_classes, ignore_index=self.cfg.ignore_index)

    def update(self, metrics: SegmentationMetrics, output: torch.Tensor, target: torch.Tensor) -> None:
        self._check(target)
        metrics.update(output.argmax(dim=1), target)

    def compute(self, metrics: SegmentationMetrics) -> dict[str, float]:
        out = metrics.compute()
        return {"miou": out["miou"], "pixel_acc": out["pixel_acc"]}


class Depth(Objective):
    """The head predicts log depth; `silog` works on it directly, `l1` on its exponential (metres)."""

    @property
    def out_channels(self) -> int:
        return 1

    def _valid(self, target: torch.Tensor) -> torch.Tensor:
        valid = target > 0
        if self.cfg.max_depth is not None:
            valid &= target <= self.cfg.max_depth
        return valid

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = self._valid(target)
        log_pred = output[:, 0].float()[valid]
        if log_pred.numel() == 0:
            return output.sum() * 0.0
        gt = target[valid]
        if self.cfg.depth_loss == "l1":
            return (log_pred.clamp(max=20).exp() - gt).abs().mean()
        d = log_pred - gt.clamp(min=MIN_DEPTH).log()
        return torch.sqrt((d.pow(2).mean() - self.cfg.silog_lambda * d.mean().pow(2)).clamp(min=1e-8))

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Metres (B, H, W)."""
        return output[:, 0].float().clamp(max=20).exp().clamp(min=MIN_DEPTH)

    def new_metrics(self) -> DepthMetrics:
        return DepthMetrics()

    def update(self, metrics: DepthMetrics, output: torch.Tensor, target: torch.Tensor) -> None:
        metrics.update(self.predict(output), target, self._valid(target))

    def compute(self, metrics: DepthMetrics) -> dict[str, float]:
        out = metrics.compute()
        return {k: out[k] for k in ("abs_rel", "rmse", "delta1")}


def build_objective(cfg: TaskSection, classes: list[str] | None) -> Objective:
    """The task of a recipe; `classes` (from the data) fixes num_classes unless the recipe sets it."""
    num_classes = cfg.num_classes if cfg.num_classes is not None else (len(classes) if classes else None)
    if cfg.name == "depth":
        return Depth(cfg, None)
    if num_classes is None or num_classes < 1:
        raise ConfigError(f"task.num_classes is needed for {cfg.name} on this data; set it (e.g. 150 for ADE20K)")
    return (Classification if cfg.name == "classification" else Segmentation)(cfg, num_classes)
