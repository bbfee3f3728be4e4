"""Kill a CPU run with SIGKILL mid-way, resume it, and demand the very same losses."""

import os
import signal
import subprocess
import sys
import time

from open4m.model import FourM
from open4m.train.checkpointing import checkpoints
from open4m.train.monitor import read_metrics

from run_recipes import train_losses, write_recipe

STEPS = 14


def _command(recipe_path):
    return [sys.executable, "-m", "open4m.cli", "train", str(recipe_path)]


def test_sigkill_and_resume_reproduces_losses(recipe, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref_path, ref_dir = write_recipe(recipe, tmp_path, "ref", steps=STEPS, save_every=3, eval_every=5)
    subprocess.run(_command(ref_path), check=True, env=env, capture_output=True)

    path, run_dir = write_recipe(recipe, tmp_path, "killed", steps=STEPS, save_every=3, eval_every=5)
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
    ref, resumed = train_losses(ref_dir), train_losses(run_dir)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert resumed == ref  # bit-identical, not approximately equal

    assert len(checkpoints(run_dir)) == 2  # keep_last
    for name in ("model.safetensors", "model_ema.safetensors"):
        a = FourM.from_pretrained(run_dir / name).state_dict()
        b = FourM.from_pretrained(ref_dir / name).state_dict()
        assert all(a[k].equal(b[k]) for k in a)
