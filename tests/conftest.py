"""Shared test helpers: where the reference golden files live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the network: Hub lookups answer from local caches the tests build, and a file
# that is not cached fails at once instead of after huggingface_hub's retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_fixtures() -> Path:
    """../shared/fixtures/reference beside the repo, or $OPEN4M_FIXTURES/reference."""
    base = Path(os.environ.get("OPEN4M_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
    return base / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = reference_fixtures()
    if not path.is_dir():
        pytest.skip(f"reference fixtures not found at {path} (set OPEN4M_FIXTURES to the shared/fixtures folder)")
    return path


# A tiny world-model bundle trained once per session by the real recipe (about 30 s on 2 cores): the
# world source (tests/sources) reads its tokenizers, the demo (tests/demo) runs it.
TINY_RECIPE = """
world: {image_size: 32, patch_size: 8, rgb_patch_size: 4, train_scenes: 24}  # finer RGB input patches
tokenizers:
  codebook_size: {rgb: 32, depth: 32, normal: 32, semseg: 32, canny_edge: 32}
  latent_dim: 8
  arch: {dim: 32, depth: 1, heads: 2}
  train: {steps: 3, batch_size: 8, lr: 2.0e-3, warmup: 1, ema_decay: 0.9}
  per_modality: {rgb: {arch: {dim: 48}, train: {steps: 4}}}  # a wider RGB tokenizer
text: {extra_words: 100}
fourm:
  model: {preset: tiny-swiglu_nobias, arch: {dim: 32, encoder_depth: 1, decoder_depth: 1, num_heads: 2}}
  data: {mixture: symmetric, alpha: 0.5, input_tokens: 32, target_tokens: 32, batch_size: 4}
  optim: {lr: 2.0e-3, warmup: 1}
  train: {steps: 3, threads: 1, ema_decay: 0.9, save_every: 100, eval_every: 0, eval_batches: 1}
  log: {every: 1, tensorboard: false, progress: false}
# a warm restart on more scenes, whose captions list their objects left to right
stages: [{optim: {lr: 1.0e-3}, train: {steps: 2, seed: 1}, scenes: 30, caption_order: left_to_right}]
"""


@pytest.fixture(scope="session")
def tiny_recipe() -> str:
    """The text of the tiny world recipe `tiny_bundle` trains, for a test that trains a variant of it."""
    return TINY_RECIPE


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from open4m.recipes.world import run_recipe

    root = tmp_path_factory.mktemp("world")
    recipe = root / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    return run_recipe(recipe, root / "run", workers=1, progress=False)
