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
