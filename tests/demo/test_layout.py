"""The shipped world model is an ordinary open4m model folder: the pipeline and `open4m generate` run it
with no tokenizer arguments and no world code, feeding pixels as it was trained."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from open4m.data.synthetic import generate_sample, seed_for
from open4m.data.synthetic import world
from open4m.data.synthetic.world import IMAGE_MODALITIES
from open4m.eval.models import EvalModel
from open4m.sources.world import SHIPPED, bundle_missing

pytestmark = pytest.mark.skipif(bool(bundle_missing(SHIPPED)), reason="no world model shipped in src/open4m/assets")

# A fresh interpreter: nothing registers the world's modalities but the folder itself.
PIPELINE = """
import sys, numpy as np, open4m
from open4m import modalities
from open4m.data.synthetic import generate_sample, seed_for
assert "rgb@64" not in modalities.all_modalities()
pipe = open4m.pipeline("rgb->depth", model=sys.argv[1], steps=4, temps=0.0)
out = pipe(generate_sample(seed_for("test", 0), 64)["rgb"], seed=0)
np.savez(sys.argv[2], tokens=out.tokens["tok_depth@64"]["tensor"].numpy(), decoded=out.decoded["tok_depth@64"].numpy(),
         image=np.asarray(out.images["tok_depth@64"][0]), mean=modalities.get("rgb@64").pixel_mean)
"""


def _fresh(*args: str, cwd) -> subprocess.CompletedProcess:
    # everything must come from the folder; one thread: a 6 M-parameter model gains nothing from more, and
    # oversubscribed threads on a busy machine made this run ten times slower
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def shipped():
    return EvalModel.load()


@pytest.fixture(scope="module")
def scene():
    return generate_sample(seed_for("test", 0), 64)


def _greedy_depth_tokens(model: EvalModel, rgb: np.ndarray) -> torch.Tensor:
    return model.generate({model.rgb: rgb[None]}, model.image_modality("depth"), steps=4).tokens["tok_depth@64"]["tensor"]


def test_shipped_folder_is_the_standard_layout():
    names = {p.relative_to(SHIPPED).as_posix() for p in SHIPPED.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizers.json", "world.json",
            "tokenizers/text.json"} <= names
    assert not {"fourm.safetensors", "text_tokenizer.json", "MODEL_CARD.md"} & names
    table = json.loads((SHIPPED / "tokenizers.json").read_text())["tokenizers"]
    assert set(table) == {f"tok_{b}@64" for b in IMAGE_MODALITIES} | {"world_caption", "world_det", "world_palette",
                                                                       "world_metadata"}


def test_pipeline_in_a_fresh_process_predicts_depth_as_the_eval_runner_does(shipped, scene, tmp_path):
    run = _fresh("-c", PIPELINE, str(SHIPPED), str(tmp_path / "out.npz"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = np.load(tmp_path / "out.npz")
    assert tuple(out["mean"]) == (0.5, 0.5, 0.5)  # from model.safetensors: pixels in [-1, 1], as in training
    assert out["image"].shape[:2] == (64, 64)
    expected = _greedy_depth_tokens(shipped, scene["rgb"])
    np.testing.assert_array_equal(out["tokens"], expected.numpy())
    np.testing.assert_array_equal(world.from_model_form("depth", torch.from_numpy(out["decoded"])),
                                  shipped.image("depth", {shipped.rgb: scene["rgb"][None]}))


def test_generate_cli_writes_depth_and_the_world_caption(scene, tmp_path):
    Image.fromarray(scene["rgb"]).save(tmp_path / "scene.png")
    run = _fresh("-m", "open4m.cli", "generate", "--model", str(SHIPPED), "--input", "rgb=scene.png",
                 "--target", "depth,world_caption", "--steps", "4", "--temps", "0", "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "tok_depth_64_0.png").is_file()
    texts = json.loads((tmp_path / "out" / "texts.json").read_text())["texts"]
    assert texts["world_caption"][0].strip()


def test_an_incomplete_folder_names_what_it_lacks(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED, broken)
    (broken / "tokenizers" / "tok_depth.safetensors").unlink()
    assert bundle_missing(broken) == ["tokenizers/tok_depth.safetensors"]
    (broken / "model.safetensors").unlink()
    assert bundle_missing(broken) == ["model.safetensors"]
