"""Training from webdataset shards under torchrun: 1, 2 and 4 gloo processes on one global batch agree, every
sample of an epoch is read once across ranks, and 4 processes stopped mid-run resume at the right position.

The global batch is 4 pieces of 2 samples: 1 process x accum 4, 2 x 2, 4 x 1. Each piece is the next batch of
its own part of the shards (`StreamBatches`), so the layouts see the same samples with the same masks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from open4m.config import from_dict
from open4m.model import FourM
from open4m.train.tasks.fourm import FourMRecipe, train

from run_recipes import train_losses
from token_shards import write_token_shards

PIECES, BATCH = 4, 2
FLAT = {"lr": 2e-3, "min_lr": 2e-3, "warmup": 0}  # a constant LR: a 3-step run resumed to 6 equals a 6-step run

# Each rank writes the sample ids of its micro-batches: the data path under a real process group.
READ_IDS = r"""
import json, os, sys
import torch.distributed as dist
from open4m.data.batches import batch_loader
from open4m.sources import build_source

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
source = build_source(sys.argv[1], ["tok_rgb@224", "tok_depth@224", "caption"])
accum, steps = 4 // world, int(sys.argv[2])
batches = batch_loader(source, None, 2, seed=0, rank=rank, world=world, accum=accum, stop=steps * accum)
ids = [[int(row[0]) for row in batch["caption"]] for batch in batches]
with open(os.path.join(sys.argv[3], f"rank{rank}.json"), "w") as f:
    json.dump(ids, f)
dist.destroy_process_group()
"""


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """16 shards of 4 samples (64 samples): each of the 4 parts holds 4 shards, an epoch is 8 steps."""
    return write_token_shards(tmp_path_factory.mktemp("shards"), n=64, per_shard=4,
                              modalities=("tok_rgb", "tok_depth", "caption"))


def recipe(micro_recipe, shards, out_dir, world: int, steps: int) -> dict:
    return micro_recipe(out_dir, data={"source": str(shards), "batch_size": BATCH}, optim=FLAT,
                        train={"steps": steps, "save_every": 3, "eval_every": 0, "accum_steps": PIECES // world})


def run_ranks(micro_recipe, shards, tmp_path, name: str, world: int, steps: int):
    path = tmp_path / f"{name}-{steps}.yaml"
    path.write_text(yaml.safe_dump(recipe(micro_recipe, shards, tmp_path / name, world, steps)))
    return torchrun(world, "-m", "open4m.cli", "train", str(path))


@pytest.mark.slow
def test_each_rank_reads_its_own_pieces_and_all_samples_once_per_epoch(shards, tmp_path):
    script = tmp_path / "read_ids.py"
    script.write_text(READ_IDS)
    per_layout = {}
    for world in (1, 2, 4):
        out = tmp_path / f"ids{world}"
        out.mkdir()
        torchrun(world, str(script), str(shards), "16", str(out))
        ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
        accum = PIECES // world
        # step s of the global batch: rank-major, then micro-step, as the engine sums the pieces
        per_layout[world] = [[i for r in range(world) for i in sum(ranks[r][s * accum:(s + 1) * accum], [])]
                             for s in range(16)]
    assert per_layout[1] == per_layout[2] == per_layout[4]
    steps = per_layout[4]
    for epoch in range(2):  # 8 steps x 8 samples = the 64 samples, each once
        assert sorted(i for step in steps[8 * epoch:8 * epoch + 8] for i in step) == list(range(64))


@pytest.mark.slow
def test_one_two_and_four_processes_train_alike_and_four_resume_in_place(recipe, shards, tmp_path):
    micro_recipe = recipe
    single = from_dict(FourMRecipe, micro_recipe(tmp_path / "one", data={"source": str(shards), "batch_size": BATCH},
                                                 optim=FLAT, train={"steps": 6, "save_every": 3, "eval_every": 0,
                                                                    "accum_steps": PIECES}))
    train(single)
    two = run_ranks(micro_recipe, shards, tmp_path, "two", 2, 6)
    assert "2 rank(s), global batch 8" in two.stderr
    run_ranks(micro_recipe, shards, tmp_path, "four", 4, 6)
    run_ranks(micro_recipe, shards, tmp_path, "stopped", 4, 3)  # 4 processes stop after step 3 ...
    resumed = run_ranks(micro_recipe, shards, tmp_path, "stopped", 4, 6)  # ... and the same command goes on to 6
    assert "resumed from step-00000003" in resumed.stderr

    base = train_losses(tmp_path / "one")
    assert sorted(base) == list(range(1, 7))
    weights = FourM.from_pretrained(tmp_path / "one" / "model.safetensors").state_dict()
    for name in ("two", "four", "stopped"):
        losses = train_losses(tmp_path / name)
        assert sorted(losses) == list(range(1, 7)), name
        for step, logged in base.items():
            assert losses[step]["train/loss"] == pytest.approx(logged["train/loss"], rel=1e-4, abs=1e-5), (name, step)
        other = FourM.from_pretrained(tmp_path / name / "model.safetensors").state_dict()
        assert max((weights[k] - other[k]).abs().max().item() for k in weights) < 1e-4, name
