"""Shared helpers: a micro recipe that trains in well under a second per step on one CPU thread."""

from __future__ import annotations

import pytest

from open4m.config import from_dict
from open4m.train.tasks.fourm import FourMRecipe


def micro_recipe(out_dir, **sections) -> dict:
    recipe = {
        "model": {"preset": "tiny-swiglu_nobias", "arch": {"dim": 32, "encoder_depth": 1, "decoder_depth": 1, "num_heads": 2}},
        "data": {"modalities": ["tok_rgb@224", "tok_depth@224", "caption"], "num_samples": 64, "num_val_samples": 8,
                 "input_tokens": 16, "target_tokens": 16, "batch_size": 4},
        "optim": {"lr": 3e-3, "warmup": 2},
        "train": {"steps": 6, "out_dir": str(out_dir), "threads": 1, "save_every": 2, "eval_every": 3, "eval_batches": 1},
        "log": {"every": 1, "progress": False},
    }
    for name, values in sections.items():
        recipe[name] = {**recipe[name], **values}
    return recipe


@pytest.fixture
def recipe():
    """The micro recipe as a dict (for tests that write YAML and run the CLI)."""
    return micro_recipe


@pytest.fixture
def micro(tmp_path):
    """A FourMRecipe factory: micro(**{"train": {...}}) with out_dir under tmp_path."""
    def make(sub: str = "run", **sections):
        return from_dict(FourMRecipe, micro_recipe(tmp_path / sub, **sections), command="train")
    return make
