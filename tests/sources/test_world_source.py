"""`data.source: world`: procedural scenes tokenized by a world model's tokenizers, trained on by `open4m train`."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from open4m.data.synthetic.world import WorldSpec
from open4m.sources import build_source
from open4m.sources.world import SHIPPED, WorldScenes, WorldTokens, bundle_missing
from open4m.config import from_dict
from open4m.train.tasks.fourm import FourMRecipe, load_recipe, train
from open4m.train.monitor import read_metrics


def _spec(bundle) -> WorldSpec:
    return WorldSpec.from_dict(json.loads((bundle / "world.json").read_text())["spec"])


def test_world_samples_are_deterministic_per_split(tiny_bundle):
    names = _spec(tiny_bundle).all_modalities
    a = WorldTokens(names, 3, bundle=tiny_bundle, progress=False)
    b = WorldTokens(names, 3, bundle=tiny_bundle, progress=False)
    val = WorldTokens(names, 3, bundle=tiny_bundle, split="val", progress=False)
    assert len(a) == 3 and set(a[0]) == set(names)
    for i in range(3):
        assert all(np.array_equal(a[i][m], b[i][m]) for m in names)
    assert not np.array_equal(a[0]["tok_rgb@32"], val[0]["tok_rgb@32"])
    assert a[0]["tok_depth@32"].shape == (16,) and a[0]["rgb@32"].shape == (3, 32, 32)
    assert a[0]["world_caption"].dtype == np.int64 and a[0]["world_caption"].ndim == 1


def test_the_registry_builds_the_world_like_any_source(tiny_bundle):
    names = ["rgb@32", "tok_depth@32", "world_caption"]
    built = build_source(f"world:{tiny_bundle}", names, num_samples=2, split="val", image_size=32, folders={},
                         progress=False)
    direct = WorldTokens(names, 2, bundle=tiny_bundle, split="val", progress=False)
    assert isinstance(built, WorldTokens) and all(np.array_equal(built[1][m], direct[1][m]) for m in names)
    scenes = build_source("world:32", family="aligned", num_samples=2, split="val")
    assert isinstance(scenes, WorldScenes) and scenes[1]["rgb"].shape == (32, 32, 3)
    assert scenes[1]["caption"] and scenes[0]["__key__"] == "scene_10000000"


def test_world_source_errors_name_the_fix(tiny_bundle):
    with pytest.raises(ValueError, match="no modality \\['tok_depth@224'\\]"):
        WorldTokens(["tok_depth@224"], 2, bundle=tiny_bundle, progress=False)
    with pytest.raises(ValueError, match="set data.image_size: 32"):
        WorldTokens(["tok_depth@32"], 2, bundle=tiny_bundle, image_size=64, progress=False)


def _recipe(bundle, out_dir, steps):
    return from_dict(FourMRecipe, {
        "model": {"preset": "tiny-swiglu_nobias",
                  "arch": {"dim": 32, "encoder_depth": 1, "decoder_depth": 1, "num_heads": 2, "patch_size": 8}},
        "data": {"source": f"world:{bundle}", "modalities": _spec(bundle).all_modalities, "image_size": 32,
                 "num_samples": 12, "num_val_samples": 4, "input_tokens": 24, "target_tokens": 16, "batch_size": 4},
        "optim": {"lr": 3e-3, "warmup": 1},
        "train": {"steps": steps, "out_dir": str(out_dir), "threads": 1, "save_every": 2, "eval_every": 0,
                  "eval_batches": 1},
        "log": {"every": 1, "progress": False, "tensorboard": False},
    })


def _train_losses(run_dir):
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("train/loss")}
            for r in read_metrics(run_dir) if "train/loss" in r}


def test_train_on_world_resumes_exactly_and_exports_a_self_describing_model(tiny_bundle, tmp_path):
    straight = train(_recipe(tiny_bundle, tmp_path / "straight", 4))
    train(_recipe(tiny_bundle, tmp_path / "resumed", 2))
    resumed = train(_recipe(tiny_bundle, tmp_path / "resumed", 4))
    assert resumed.steps == 4
    assert _train_losses(tmp_path / "resumed") == _train_losses(tmp_path / "straight")
    assert {"train/loss/tok_depth@32", "train/loss/world_caption"} <= set(_train_losses(tmp_path / "straight")[1])
    assert any(r.get("val/loss") for r in straight.metrics)  # the world's validation split was evaluated

    # a fresh interpreter, which never registered the world's modalities, loads and samples the export
    script = textwrap.dedent(f"""
        import numpy as np, torch
        from open4m.data.synthetic import generate_sample, seed_for
        from open4m.data.synthetic import world
        from open4m.generation import Sampler, build_schedule
        from open4m.model import FourM
        model = FourM.from_pretrained({str(straight.model_path)!r})
        rgb = world.to_model_form("rgb", generate_sample(seed_for("val", 0), 32)["rgb"])[None]
        schedule = build_schedule("rgb@32->tok_depth@32", steps=2, temps=0.0, image_size=32)
        out = Sampler(model).generate({{"rgb@32": rgb}}, schedule)
        print(tuple(out["tok_depth@32"]["tensor"].shape), int(out["tok_depth@32"]["tensor"].max()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    shape, top = done.stdout.split(")")
    assert shape == "(1, 16" and int(top) < 32


@pytest.mark.skipif(bool(bundle_missing(SHIPPED)), reason="no world model shipped in src/open4m/assets")
def test_world_tiny_recipe_matches_the_shipped_world(request):
    root = request.config.rootpath
    cfg = load_recipe(root / "configs" / "world_tiny.yaml")
    spec = _spec(SHIPPED)
    assert cfg.data.source == "world" and cfg.data.image_size == spec.image_size
    assert cfg.data.modalities == spec.all_modalities
    assert cfg.model.arch["patch_size"] == spec.patch_size
    assert cfg.train.out_dir == str(root / "configs" / "../runs/world_tiny")  # relative to the recipe: repo/runs/
