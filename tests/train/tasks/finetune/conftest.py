"""A tiny random 64 px FourM saved like a world bundle (world.json beside it) and micro fine-tuning recipes."""

from __future__ import annotations

import shutil

import pytest
import torch

from open4m.config import from_dict
from open4m.train.tasks.finetune import FinetuneRecipe
from open4m.sources.world import SHIPPED


@pytest.fixture(scope="session")
def tiny_fourm(tmp_path_factory):
    """Path of a random FourM over the world's rgb@64 (8 px patches), registered as the bundle does."""
    from open4m.train.tasks.finetune.encoder import register_bundle_modalities
    from open4m.model import FourM, preset

    folder = tmp_path_factory.mktemp("tiny_bundle")
    shutil.copy(SHIPPED / "world.json", folder / "world.json")
    register_bundle_modalities(str(folder))
    torch.manual_seed(0)
    cfg = preset("tiny-swiglu_nobias", dim=32, encoder_depth=2, decoder_depth=1, num_heads=2,
                 domains_in=["rgb@64", "tok_rgb@64"], domains_out=["tok_rgb@64"])
    return FourM(cfg).save_file(folder / "fourm.safetensors")


@pytest.fixture
def ft_recipe(tiny_fourm, tmp_path):
    """FinetuneRecipe factory: ft_recipe(task_name, **{section: {key: value}})."""
    def make(task_name: str, sub: str = "run", **sections):
        recipe = {
            "model": {"init_from": str(tiny_fourm), "head_features": 8, "drop_path": 0.1},
            "task": {"name": task_name},
            "data": {"source": "world", "image_size": 64, "pixel_norm": "symmetric", "num_samples": 8,
                     "num_val_samples": 4, "batch_size": 4},
            "optim": {"lr": 1e-3, "warmup": 1},
            "train": {"steps": 2, "out_dir": str(tmp_path / sub), "threads": 1, "save_every": 2, "eval_every": 0},
            "log": {"every": 1, "progress": False, "tensorboard": False},
        }
        for name, values in sections.items():
            recipe[name] = {**recipe.get(name, {}), **values}
        return from_dict(FinetuneRecipe, recipe, command="finetune")
    return make
