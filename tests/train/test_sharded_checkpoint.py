"""Sharded (DCP safetensors) checkpoints: pickle-free, exact resume, and resumable on another number of ranks.

The cheap tests run in this process (DCP without a process group); the torchrun ones start two gloo ranks:
saved by 2 ranks under FSDP and resumed by 1 (and the reverse, and 2 -> 2), the losses must equal an
uninterrupted run's.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from open4m.config import from_dict
from open4m.errors import CheckpointError, ConfigError
from open4m.model import FourM
from open4m.train import sharded
from open4m.train.checkpointing import checkpoints, load_checkpoint, save_checkpoint
from open4m.train.distributed import DistInfo
from open4m.train.monitor import read_metrics
from open4m.train.tasks.fourm import FourMRecipe, FourMTask, train

ONE = DistInfo(0, 1, 0, torch.device("cpu"))
FLAT = {"lr": 2e-3, "min_lr": 2e-3, "warmup": 0}  # a constant LR: a run cut short and extended equals a longer one


def _losses(run_dir):
    return {r["step"]: r["train/loss"] for r in read_metrics(run_dir) if "train/loss" in r}


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _model_and_optimizer(recipe, tmp_path, seed):
    torch.manual_seed(seed)
    task = FourMTask(from_dict(FourMRecipe, recipe(tmp_path / "unused"), command="train"))
    task.setup(ONE)
    return task.model, torch.optim.AdamW(task.model.parameters(), lr=1e-3)


def test_roundtrip_in_one_process_is_exact_and_pickle_free(recipe, tmp_path):
    model, optimizer = _model_and_optimizer(recipe, tmp_path, 0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    path = save_checkpoint(tmp_path / "run", 3, model=model, optimizer=optimizer, ema=None, state={"tokens": 7},
                           info=ONE, keep_last=1, sharded=True)
    assert _files(path) == ["optimizer.json", "rng-rank0.safetensors",
                            "shards/shard-00001-model-00001-of-00001.safetensors", "state.json"]
    assert sharded.is_sharded_checkpoint(path)
    assert json.loads((path / "optimizer.json").read_text())["param_groups"][0]["lr"] == 1e-3

    other, other_opt = _model_and_optimizer(recipe, tmp_path, 1)
    assert load_checkpoint(path, model=other, optimizer=other_opt, ema=None, info=ONE)["tokens"] == 7
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name
    head = other.decoder_embeddings["caption"]
    assert head.to_logits.weight is head.token_emb.weight  # still tied after the load
    mine, theirs = optimizer.state_dict(), other_opt.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]
    for i, entries in mine["state"].items():
        for key, value in entries.items():
            assert torch.equal(value, theirs["state"][i][key]), (i, key)

    full = sharded.read_full_weights(path)
    assert set(full) == set(model.state_dict())
    assert all(torch.equal(full[k], v) for k, v in model.state_dict().items())


def test_a_sharded_run_resumes_like_an_uninterrupted_one(micro, tmp_path):
    sections = {"optim": FLAT, "data": {"batch_size": 2}}
    straight = train(micro("straight", train={"steps": 6, "save_every": 2, "eval_every": 0,
                                              "checkpoint_format": "sharded"}, **sections))
    assert sharded.is_sharded_checkpoint(checkpoints(straight.run_dir)[-1])
    train(micro("cut", train={"steps": 4, "save_every": 2, "eval_every": 0, "checkpoint_format": "sharded"}, **sections))
    resumed = train(micro("cut", train={"steps": 6, "save_every": 2, "eval_every": 0, "checkpoint_format": "sharded"},
                          **sections))
    assert _losses(resumed.run_dir) == _losses(straight.run_dir)  # bit for bit in one process
    assert not list(resumed.run_dir.rglob("*.pt")) and not list(resumed.run_dir.rglob("*.bin"))


def test_a_run_may_switch_format_between_resumes(micro):
    """The format is read from the checkpoint, so a single-file checkpoint resumes into a sharded run."""
    sections = {"optim": FLAT, "data": {"batch_size": 2}}
    straight = train(micro("straight", train={"steps": 4, "save_every": 2, "eval_every": 0}, **sections))
    train(micro("mixed", train={"steps": 2, "save_every": 2, "eval_every": 0, "checkpoint_format": "single"}, **sections))
    mixed = train(micro("mixed", train={"steps": 4, "save_every": 2, "eval_every": 0, "checkpoint_format": "sharded"},
                        **sections))
    assert _losses(mixed.run_dir) == _losses(straight.run_dir)


def test_auto_shards_only_fsdp_on_several_ranks():
    two = DistInfo(0, 2, 0, torch.device("cpu"))
    assert sharded.use_sharded("auto", "fsdp", two) and not sharded.use_sharded("auto", "ddp", two)
    assert not sharded.use_sharded("auto", "fsdp", ONE) and sharded.use_sharded("sharded", "ddp", ONE)
    assert not sharded.use_sharded("single", "fsdp", two)


def test_bad_format_and_damaged_checkpoints_are_one_line_errors(micro, recipe, tmp_path):
    with pytest.raises(ConfigError, match=r"train.checkpoint_format='zip': use auto, single, sharded"):
        micro("bad", train={"checkpoint_format": "zip"})
    model, optimizer = _model_and_optimizer(recipe, tmp_path, 0)
    path = save_checkpoint(tmp_path / "run", 1, model=model, optimizer=optimizer, ema=None, state={}, info=ONE,
                           keep_last=1, sharded=True)
    (path / "optimizer.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"optimizer.json is missing or damaged .*train.resume=false"):
        load_checkpoint(path, model=model, optimizer=optimizer, ema=None, info=ONE)
    with pytest.raises(CheckpointError, match="not a sharded checkpoint"):
        sharded.read_full_weights(tmp_path)


def test_a_checkpoint_of_another_model_is_refused(recipe, tmp_path):
    model, optimizer = _model_and_optimizer(recipe, tmp_path, 0)
    path = save_checkpoint(tmp_path / "run", 1, model=model, optimizer=optimizer, ema=None, state={}, info=ONE,
                           keep_last=1, sharded=True)
    task = FourMTask(from_dict(FourMRecipe, recipe(tmp_path / "unused", model={
        "preset": "tiny-swiglu_nobias", "arch": {"dim": 64, "encoder_depth": 1, "decoder_depth": 1, "num_heads": 2}}),
        command="train"))
    task.setup(ONE)
    wider = torch.optim.AdamW(task.model.parameters(), lr=1e-3)
    with pytest.raises(CheckpointError, match=r"does not hold this model's state .*resume with the recipe that wrote"):
        load_checkpoint(path, model=task.model, optimizer=wider, ema=None, info=ONE)


# ------------------------------------------------------------------------------------------
# Other world sizes, under torchrun (two gloo processes)
# ------------------------------------------------------------------------------------------
def _run(recipe, tmp_path, name, run, steps, ranks):
    """Train `run` to `steps` on `ranks` processes; pieces of 2 samples, global batch 4 (2 x ranks x accum)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path / run, data={"batch_size": 2}, optim=FLAT, train={
        "steps": steps, "save_every": 2, "eval_every": 0, "distributed": "fsdp", "checkpoint_format": "sharded",
        "accum_steps": 2 // ranks})))
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "open4m.cli", "train", str(path)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.parametrize("first,then", [(2, 1), (1, 2), (2, 2)])
def test_resume_on_another_number_of_ranks(recipe, tmp_path, first, then):
    reference = from_dict(FourMRecipe, recipe(tmp_path / "straight", data={"batch_size": 2}, optim=FLAT,
                                              train={"steps": 4, "save_every": 2, "eval_every": 0, "accum_steps": 2}))
    train(reference)
    _run(recipe, tmp_path, "first", "cut", 2, first)
    shards = sorted(p.name for p in (tmp_path / "cut" / "checkpoints" / "step-00000002" / "shards").iterdir())
    assert len(shards) == first  # one file per rank that wrote it
    out = _run(recipe, tmp_path, "then", "cut", 4, then)
    assert "resumed from step-00000002" in out.stderr
    a, b = _losses(tmp_path / "straight"), _losses(tmp_path / "cut")
    assert sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5), step
    final = sharded.read_full_weights(checkpoints(tmp_path / "cut")[-1])
    exported = FourM.from_pretrained(tmp_path / "cut" / "model.safetensors").state_dict()
    assert max((final[k] - exported[k]).abs().max().item() for k in exported) < 1e-6
