"""Fine-tuning the FourM encoder on a downstream task (`open4m finetune RECIPE.yaml`).

The task supplies the encoder (from a FourM checkpoint or from scratch, with a classification or
DPT-style dense head, frozen / LoRA), the layer-wise LR groups (``lr_scale`` per block), augmented
batches of a labelled source, the task loss, validation over the whole validation set with the
task's metrics, and the export (`model.safetensors`, loaded with `FourMEncoder.from_pretrained`);
the engine runs it. Single process (one CPU or GPU).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ...engine import StepOutput, Task, TrainResult, autocast, run
from ...lora import merge_lora
from .data import Transform, build_sources
from .encoder import build_encoder, param_groups
from .objectives import Objective, build_objective
from .recipe import TASKS, FinetuneRecipe, describe, load_recipe

__all__ = ["FinetuneRecipe", "FinetuneTask", "finetune", "load_recipe", "describe", "evaluate", "TASKS"]


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, batches: Any, device: torch.device,
             precision: str) -> dict[str, float]:
    """Loss and task metrics over every batch (the whole validation set)."""
    was_training = model.training
    model.eval()
    metrics, loss_sum, count = objective.new_metrics(), 0.0, 0
    for batch in batches:
        image, target = batch["image"].to(device), batch["target"].to(device)
        with autocast(device, precision):
            output = model(image)
        loss_sum += float(objective.loss(output, target)) * image.shape[0]
        count += image.shape[0]
        objective.update(metrics, output.float(), target)
    model.train(was_training)
    return {"loss": loss_sum / max(count, 1), **objective.compute(metrics)}


class FinetuneTask(Task):
    """Encoder + head on a labelled source (see the module docstring)."""

    name = "finetune"

    def __init__(self, recipe: FinetuneRecipe) -> None:
        self.recipe = recipe

    def setup(self, info: Any) -> str:
        r, d = self.recipe, self.recipe.data
        if info is not None and info.enabled:
            from ....errors import ConfigError

            raise ConfigError("open4m finetune runs in one process; start it without torchrun")
        self.train_source, self.val_source, classes = build_sources(d, r.task, r.train.seed)
        self.objective = build_objective(r.task, classes)
        self.model, report = build_encoder(r.model, self.objective, d.image_size)
        return (f"{report}; {len(self.train_source)} train / {len(self.val_source)} val samples, layer decay "
                f"{r.optim.layer_decay}")

    def global_batch(self, info: Any, accum: int) -> int:
        return self.recipe.data.batch_size

    def tokens_per_step(self, info: Any, accum: int) -> int:
        return self.recipe.data.batch_size * math.prod(self.model.grid_size(self.recipe.data.image_size))

    def param_groups(self, weight_decay: float) -> list[dict]:
        return param_groups(self.model, weight_decay, self.recipe.optim.layer_decay)

    def resume_state(self, info: Any, accum: int) -> dict[str, Any]:
        return {"batch_size": self.recipe.data.batch_size}

    def batches(self, start: int, stop: int, info: Any, accum: int) -> Iterator[Any]:
        from ....sources import sample_batches

        r = self.recipe
        return sample_batches(self.train_source, r.data.batch_size, r.train.seed, start=start, stop=stop,
                              transform=Transform(r.data, r.task, train=True), num_workers=r.data.num_workers,
                              pin_memory=info.device.type == "cuda")

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> StepOutput:
        pin = device.type == "cuda"
        image, target = batch["image"].to(device, non_blocking=pin), batch["target"].to(device, non_blocking=pin)
        return StepOutput(self.objective.loss(model(image), target))

    def evaluate(self, model: nn.Module, info: Any, precision: str) -> dict[str, float]:
        from ....sources import ordered_batches

        r = self.recipe
        batches = ordered_batches(self.val_source, r.data.batch_size, transform=Transform(r.data, r.task, train=False),
                                  num_workers=r.data.num_workers)
        return evaluate(model, self.objective, batches, info.device, precision)

    def weights_to_file(self, state: Any) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The encoder's own file layout (weights + its config), so a checkpoint loads with `FourMEncoder.from_pretrained`."""
        return self.model.file_tensors(state)

    def weights_from_file(self, model: nn.Module, state: Any) -> None:
        from ....model.checkpoint import load_state_dict_into

        load_state_dict_into(model, state, strict=True)

    def export(self, model: nn.Module, ema: Any, run_dir: Path) -> Path:
        merge_lora(model)  # the export is a plain encoder + head; the checkpoints keep the adapters
        return model.save_pretrained(run_dir / "model.safetensors", overwrite=True)

    def summary(self, records: list[dict[str, Any]]) -> str:
        """Training loss first / last and every validation metric at the first and last evaluation."""
        train = [r for r in records if "train/loss" in r]
        val = [r for r in records if any(k.startswith("val/") for k in r)]
        if not train:
            return "no training steps were logged"
        rows = [("metric", "first", "last"),
                ("train/loss", f"{train[0]['train/loss']:.4f}", f"{train[-1]['train/loss']:.4f}")]
        if val:
            for key in (k for k in val[-1] if k.startswith("val/")):
                first = val[0].get(key)
                rows.append((key, f"{first:.4f}" if first is not None else "-", f"{val[-1][key]:.4f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines) + f"\nsteps {train[-1]['step']}" + (
            f" (first eval at step {val[0]['step']})" if val else "")


def finetune(recipe: FinetuneRecipe) -> TrainResult:
    """Run (or resume) the fine-tuning recipe."""
    return run(FinetuneTask(recipe), recipe.optim, recipe.train, recipe.log, recipe)

