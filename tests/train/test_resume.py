"""Kill a CPU run with SIGKILL mid-way, resume it, and demand the very same losses."""

import os
import signal
import subprocess
import sys
import time

import yaml

from open4m.model import FourM
from open4m.train.checkpointing import checkpoints
from open4m.train.monitor import read_metrics

STEPS = 14


def _command(recipe_path):
    return [sys.executable, "-m", "open4m.cli", "train", str(recipe_path)]


def _write(micro_recipe, tmp_path, name):
    recipe = micro_recipe(tmp_path / name, train={"steps": STEPS, "save_every": 3, "eval_every": 5, "keep_last": 2,
                                                  "ema_decay": 0.9})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, tmp_path / name


def _losses(run_dir):
    last = {}
    for r in read_metrics(run_dir):
        if "train/loss" in r:
            last[r["step"]] = {k: v for k, v in r.items() if k.startswith("train/loss") or k == "train/lr"}
    return last


def test_sigkill_and_resume_reproduces_losses(recipe, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref_path, ref_dir = _write(recipe, tmp_path, "ref")
    subprocess.run(_command(ref_path), check=True, env=env, capture_output=True)

    path, run_dir = _write(recipe, tmp_path, "killed")
    proc = subprocess.Popen(_command(path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(r.get("step", 0) >= 7 for r in read_metrics(run_dir)):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = max(r["step"] for r in read_metrics(run_dir))
    assert done_before < STEPS
    assert checkpoints(run_dir), "no checkpoint was written before the kill"

    subprocess.run(_command(path), check=True, env=env, capture_output=True)
    ref, resumed = _losses(ref_dir), _losses(run_dir)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert resumed == ref  # bit-identical, not approximately equal

    assert len(checkpoints(run_dir)) == 2  # keep_last
    for name in ("model.safetensors", "model_ema.safetensors"):
        a = FourM.from_pretrained(run_dir / name).state_dict()
        b = FourM.from_pretrained(ref_dir / name).state_dict()
        assert all(a[k].equal(b[k]) for k in a)
