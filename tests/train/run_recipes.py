"""Helpers of the tests that train a micro recipe in a subprocess and compare runs (resume, kill -9)."""

from __future__ import annotations

from pathlib import Path

import yaml

from open4m.train.monitor import read_metrics


def write_recipe(micro_recipe, tmp_path: Path, name: str, **train) -> tuple[Path, Path]:
    """The micro recipe with these train settings as tmp_path/NAME.yaml; (recipe path, its run folder)."""
    recipe = micro_recipe(tmp_path / name, train={"keep_last": 2, "ema_decay": 0.9, **train})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, tmp_path / name


def train_losses(run_dir: Path) -> dict[int, dict[str, float]]:
    """step -> the losses and learning rate a run logged for it (the last record of a step wins)."""
    last = {}
    for r in read_metrics(run_dir):
        if "train/loss" in r:
            last[r["step"]] = {k: v for k, v in r.items() if k.startswith("train/loss") or k == "train/lr"}
    return last
