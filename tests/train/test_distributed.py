"""Two gloo processes under torchrun against one process accumulating the same global batch."""

import os
import subprocess
import sys

import pytest
import yaml

from open4m.model import FourM
from open4m.config import from_dict
from open4m.train.tasks.fourm import FourMRecipe, train
from open4m.train.monitor import read_metrics


def _losses(run_dir):
    return {r["step"]: r["train/loss"] for r in read_metrics(run_dir) if "train/loss" in r}


def _torchrun(recipe_path, env_extra=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "open4m.cli", "train", str(recipe_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _compare(recipe, tmp_path, strategy):
    steps = {"steps": 4, "save_every": 2, "eval_every": 2}
    single = from_dict(FourMRecipe, recipe(tmp_path / "single", data={"batch_size": 2}, train={**steps, "accum_steps": 2}))
    train(single)
    dist_recipe = recipe(tmp_path / "ddp", data={"batch_size": 2}, train={**steps, "distributed": strategy})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(dist_recipe))
    out = _torchrun(path)
    assert "2 rank(s), global batch 4" in out.stderr  # the engine logs its report line
    a, b = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5), step
    m1 = FourM.from_pretrained(tmp_path / "single" / "model.safetensors").state_dict()
    m2 = FourM.from_pretrained(tmp_path / "ddp" / "model.safetensors").state_dict()
    assert max((m1[k] - m2[k]).abs().max().item() for k in m1) < 1e-4


def test_ddp_two_cpu_ranks_match_one_process(recipe, tmp_path):
    _compare(recipe, tmp_path, "ddp")


@pytest.mark.slow
def test_fsdp_two_cpu_ranks_match_one_process(recipe, tmp_path):
    _compare(recipe, tmp_path, "fsdp")


@pytest.mark.slow
def test_fsdp_resume_continues_the_run(recipe, tmp_path):
    """A constant LR makes a 4-step run resumed to 6 steps equal a straight 6-step run."""
    flat = {"lr": 2e-3, "min_lr": 2e-3, "warmup": 0}
    single = from_dict(FourMRecipe, recipe(tmp_path / "single", data={"batch_size": 2}, optim=flat,
                                           train={"steps": 6, "save_every": 2, "eval_every": 0, "accum_steps": 2}))
    train(single)
    for steps in (4, 6):
        path = tmp_path / f"fsdp{steps}.yaml"
        path.write_text(yaml.safe_dump(recipe(tmp_path / "fsdp", data={"batch_size": 2}, optim=flat,
                                              train={"steps": steps, "save_every": 2, "eval_every": 0,
                                                     "distributed": "fsdp"})))
        out = _torchrun(path)
    assert "resumed from step-00000004" in out.stderr
    a, b = _losses(tmp_path / "single"), _losses(tmp_path / "fsdp")
    assert sorted(b) == list(range(1, 7))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5), step


def test_skeleton_holds_no_weights_and_takes_the_gathered_ones():
    """The FSDP export path: a weightless copy made before sharding, filled with the full state dict."""
    import torch

    from open4m.model import FourMConfig
    from open4m.train.distributed import _blocks, skeleton

    model = FourM(FourMConfig(dim=32, encoder_depth=2, decoder_depth=1, num_heads=2,
                              domains_in=["rgb@224", "tok_depth@224"], domains_out=["tok_depth@224"]))
    bones = skeleton(model)
    assert all(t.is_meta for t in bones.state_dict().values())
    assert not any(t.is_meta for t in model.state_dict().values())  # the original is untouched
    assert len(_blocks(model)) == 3  # two encoder blocks and one decoder block, each sharded on its own
    bones.load_state_dict(model.state_dict(), strict=True, assign=True)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, dict(bones.named_buffers())[name]), name
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), bones.state_dict().values()))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_divae_trains_on_two_ranks(tmp_path, strategy):
    """The diffusion tokenizer's training forward goes through the wrapper: gradients are synchronised
    (the engine checks the replicas agree at the end) and FSDP gathers its parameters."""
    import numpy as np

    from open4m.tokenizers import load_tokenizer

    data = tmp_path / "depth"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        np.save(data / f"{i}.npy", rng.uniform(0.5, 10.0, (32, 32)).astype(np.float32))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "open4m.cli",
           "train-tokenizer", "--kind", "divae", "--modality", "depth", "--size", "tiny", "--image-size", "32",
           "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2",
           "--set", f"train.distributed={strategy}", "--set", "train.ema_decay=null"]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("tokenizer: ") == 1  # printed by rank 0 only
    assert load_tokenizer(tmp_path / "run" / "tokenizer").config.n_channels == 1
