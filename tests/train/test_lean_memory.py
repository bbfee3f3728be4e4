"""The engine's memory levers: bf16 AdamW moments and updates inside the backward pass (train and resume)."""

import shutil

import pytest

from open4m.errors import ConfigError
from open4m.train.checkpointing import checkpoints
from open4m.train.tasks.fourm import train

from run_recipes import train_losses

LEAN = {"state_dtype": "bf16", "step_in_backward": True, "clip_grad": None}


def test_lean_run_trains_and_resumes_exactly(micro):
    cfg = micro("lean", optim=LEAN, train={"steps": 6, "save_every": 2, "keep_last": 3, "precision": "bf16",
                                           "eval_every": 0, "release_memory": True})
    first = train(cfg)
    losses = train_losses(first.run_dir)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert losses[6]["train/loss"] < losses[1]["train/loss"]
    grad_norms = [r["train/grad_norm"] for r in first.metrics if "train/grad_norm" in r]
    assert len(grad_norms) == 6 and all(n > 0 for n in grad_norms)  # summed on logged steps as gradients went by

    newest = checkpoints(first.run_dir)[-1]
    shutil.rmtree(newest)  # back to step 4: the resumed run must redo steps 5 and 6 identically
    again = train(cfg)
    resumed = train_losses(again.run_dir)
    assert resumed[5] == losses[5] and resumed[6] == losses[6]


def test_stepping_inside_backward_matches_the_ordinary_loop(micro):
    plain = train_losses(train(micro("plain", optim={"clip_grad": None}, train={"steps": 4, "eval_every": 0})).run_dir)
    inside = train_losses(train(micro("inside", optim={"clip_grad": None, "step_in_backward": True},
                                      train={"steps": 4, "eval_every": 0})).run_dir)
    assert sorted(inside) == sorted(plain) == [1, 2, 3, 4]
    for step in plain:  # fp32 moments: the same update, applied earlier
        assert inside[step] == pytest.approx(plain[step], rel=1e-5)


@pytest.mark.parametrize("sections, message", [
    ({"optim": {"step_in_backward": True}}, r"global norm cannot be clipped; set optim.clip_grad: null"),
    ({"optim": {**LEAN}, "train": {"precision": "fp16"}}, r"needs one process and fp32 or bf16"),
    ({"optim": {"state_dtype": "fp8"}}, r"optim.state_dtype='fp8': use fp32 or bf16"),
    ({"optim": {"state_dtype": "bf16", "betas": [0.9, 0.999]}}, r"betas\[1\] <= 0.99"),
])
def test_lean_settings_that_cannot_work_are_refused(micro, tmp_path, sections, message):
    with pytest.raises(ConfigError, match=message):
        train(micro("bad", **sections))
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_releasing_free_memory_is_safe_to_call_anywhere():
    import sys

    from open4m.train.memory import can_release_memory, release_free_memory

    release_free_memory()  # returns pages; never fails, a no-op where glibc is absent
    if sys.platform.startswith("linux"):
        import platform

        assert can_release_memory() == (platform.libc_ver()[0] == "glibc")
