"""kill -9 a training run at chosen points, mid-save included, then resume: the newest complete checkpoint
loads and the resumed run's losses are the uninterrupted run's, bit for bit.

The run to kill is a real process (`python -c DRIVER`) that trains the micro recipe of conftest.py. To
kill it *inside* a checkpoint save, the driver wraps one function of `open4m.train.checkpointing` so that
at the chosen step it writes a marker file and sleeps; the test waits for the marker and sends SIGKILL.
Nothing in open4m knows about this: the driver patches from outside, as a debugger would.

- `before-rename`: every file of the new checkpoint written (and fsynced), the folder not renamed yet
  (the default suite's point: a few seconds);
- `mid-write`: `model.safetensors` of the new checkpoint half written (slow suite);
- `mid-prune`: an old checkpoint renamed away, not deleted yet (slow suite);
- `export`: the final `model.safetensors` half written beside its temporary name (slow suite);
- `at-step-N`: a plain kill once step N is logged, anywhere in the loop (slow suite, several N).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from open4m.model import FourM
from open4m.train.checkpointing import checkpoints, latest_checkpoint
from open4m.train.monitor import read_metrics
from open4m.train.tasks.fourm import load_recipe, train

from run_recipes import train_losses, write_recipe

STEPS = 8

DRIVER = r"""
import os, sys, time
from open4m.train import checkpointing
from open4m.train.tasks.fourm import load_recipe, train

recipe_path, mode, at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def hang(where):
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT)
    os.write(fd, where.encode())
    os.close(fd)
    time.sleep(600)  # SIGKILL arrives here


if mode == "before-rename":
    real_commit = checkpointing.commit_dir

    def commit_dir(tmp, final):
        if final.name == f"step-{at:08d}":
            hang("before-rename")
        return real_commit(tmp, final)

    checkpointing.commit_dir = commit_dir
elif mode == "mid-write":
    real_save = checkpointing.save_file

    def save_file(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        if path.endswith("model.safetensors") and f"step-{at:08d}" in path:
            size = os.path.getsize(path)
            os.truncate(path, size // 2)
            hang("mid-write")

    checkpointing.save_file = save_file
elif mode == "mid-prune":
    real_rmtree = checkpointing.shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if os.path.basename(path).startswith(".tmp-old-step-"):
            hang("mid-prune")
        return real_rmtree(path, *args, **kwargs)

    checkpointing.shutil.rmtree = rmtree
elif mode == "export":
    import open4m.atomic as atomic
    real_fsync = atomic.fsync_file

    def fsync_file(path):
        if os.path.basename(str(path)).startswith(".model.safetensors."):
            os.truncate(path, os.path.getsize(path) // 2)
            hang("export")
        return real_fsync(path)

    atomic.fsync_file = fsync_file
train(load_recipe(recipe_path))
"""


@pytest.fixture
def reference(recipe, tmp_path):
    """The uninterrupted run (in this process: the killed one runs in a child)."""
    path, run_dir = write_recipe(recipe, tmp_path, "ref", steps=STEPS, save_every=2, eval_every=3)
    train(load_recipe(path))
    return run_dir


def _kill(path, tmp_path, mode: str, at: int) -> float:
    """Start the run, SIGKILL it at the point `mode`/`at` names (`at-step`: a random moment, drawn from a
    generator seeded by `at`, within half a second after step `at` is logged); returns the seconds it ran."""
    import random

    marker = tmp_path / f"marker-{mode}-{at}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(path), mode, str(at), str(marker)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = load_recipe(path).train.out_dir
    t0, deadline = time.perf_counter(), time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if marker.exists() if mode != "at-step" else any(r.get("step", 0) >= at for r in read_metrics(run_dir)):
            break
        time.sleep(0.01)
    if mode == "at-step":
        time.sleep(random.Random(at).uniform(0.0, 0.5))
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return time.perf_counter() - t0


def _check_resume(path, run_dir, reference, kept_step: int | None):
    """The newest complete checkpoint loads; resuming reproduces the reference's losses and weights."""
    latest = latest_checkpoint(run_dir)
    if kept_step is not None:
        assert latest is not None and latest.name == f"step-{kept_step:08d}"
    if latest is not None:
        FourM.from_pretrained(latest / "model.safetensors")  # loadable, not torn
    result = train(load_recipe(path))
    assert result.steps == STEPS
    assert train_losses(run_dir) == train_losses(reference)  # bit-identical, not approximately equal
    assert sorted(train_losses(run_dir)) == list(range(1, STEPS + 1))
    assert [p.name for p in checkpoints(run_dir)] == [f"step-{s:08d}" for s in (STEPS - 2, STEPS)]
    assert not [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp")], \
        "the killed save's leftovers are swept"
    assert not list(run_dir.glob(".*.tmp")), "a killed export's temporary file is swept by the next export"
    for name in ("model.safetensors", "model_ema.safetensors"):
        a, b = FourM.from_pretrained(run_dir / name).state_dict(), FourM.from_pretrained(reference / name).state_dict()
        assert all(a[k].equal(b[k]) for k in a)


def test_kill_while_a_checkpoint_is_saved_keeps_the_previous_one(recipe, tmp_path, reference):
    """SIGKILL after every file of checkpoint 4 is written, before its folder is renamed into place."""
    path, run_dir = write_recipe(recipe, tmp_path, "killed", steps=STEPS, save_every=2, eval_every=3)
    _kill(path, tmp_path, "before-rename", 4)
    assert (run_dir / "checkpoints" / ".tmp-step-00000004").is_dir()  # the save that was cut short
    _check_resume(path, run_dir, reference, kept_step=2)


@pytest.mark.slow
@pytest.mark.parametrize("mode,at,kept", [("mid-write", 4, 2), ("mid-write", 6, 4), ("mid-prune", 6, 6),
                                          ("before-rename", 8, 6), ("export", 0, 8)])
def test_kill_mid_save_points(recipe, tmp_path, reference, mode, at, kept):
    path, run_dir = write_recipe(recipe, tmp_path, "killed", steps=STEPS, save_every=2, eval_every=3)
    _kill(path, tmp_path, mode, at)
    _check_resume(path, run_dir, reference, kept_step=kept)


@pytest.mark.slow
@pytest.mark.parametrize("at", [3, 5, 7])
def test_kill_at_random_points_of_the_loop(recipe, tmp_path, reference, at):
    """A plain SIGKILL once step `at` is logged (wherever the loop then is: a step, a validation, a save)."""
    path, run_dir = write_recipe(recipe, tmp_path, "killed", steps=STEPS, save_every=2, eval_every=3)
    _kill(path, tmp_path, "at-step", at)
    _check_resume(path, run_dir, reference, kept_step=None)


def test_a_torn_last_metrics_line_is_dropped(tmp_path):
    """A kill mid-append tears at most metrics.jsonl's last line: it is dropped (the resumed run logs that step
    again); a damaged line before the last is a corrupt file, said so."""
    from open4m.errors import DataError

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 2.0}\n{"step": 2, "train/lo')
    assert read_metrics(tmp_path) == [{"step": 1, "train/loss": 2.0}]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "tr\n{"step": 2, "train/loss": 2.0}\n')
    with pytest.raises(DataError, match="line 1 is not JSON"):
        read_metrics(tmp_path)
