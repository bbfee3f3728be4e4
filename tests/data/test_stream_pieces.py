"""Shard streams give every rank layout the same global batches, each sample once per epoch, and resume in place.

Ranks are simulated in one process (`StreamBatches(rank=r, world=w)`): the shard path never asks
torch.distributed who it is. tests/train/test_multiprocess_data.py runs the same under torchrun.
"""

from __future__ import annotations

import pytest
import torch

from open4m.data.batches import StreamBatches, batch_loader, build_masker
from open4m.errors import DataError
from open4m.sources import build_source
from token_shards import write_token_shards

SHARDS, PER_SHARD, BATCH = 8, 4, 2  # 32 samples; 4 pieces of 2 samples per step -> an epoch is 4 steps
MODS = ["tok_rgb@224", "caption"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return build_source(str(write_token_shards(tmp_path_factory.mktemp("pieces"), SHARDS * PER_SHARD, PER_SHARD)), MODS,
                        seed=0)


def global_steps(source, world, accum, steps, masker=None, start=0):
    """Per optimizer step, the micro-batches of every rank in piece order (rank-major, then micro-step)."""
    per_rank = [list(StreamBatches(source, masker, BATCH, seed=0, rank=r, world=world, accum=accum,
                                   start=start * accum, stop=(start + steps) * accum)) for r in range(world)]
    return [[per_rank[r][s * accum + m] for r in range(world) for m in range(accum)] for s in range(steps)]


def ids(step):
    return [int(row[0]) for piece in step for row in piece["caption"]]


def test_every_layout_reads_the_same_pieces_and_each_sample_once_per_epoch(shards):
    layouts = [(1, 4), (2, 2), (4, 1)]  # (ranks, accumulation): 4 pieces per step each time
    runs = {layout: global_steps(shards, *layout, steps=8) for layout in layouts}
    one = [ids(step) for step in runs[(1, 4)]]
    for layout in layouts[1:]:
        assert [ids(step) for step in runs[layout]] == one, layout
    for epoch in range(2):  # 4 steps x 4 pieces x 2 samples = the 32 samples, once each
        assert sorted(i for step in one[4 * epoch:4 * epoch + 4] for i in step) == list(range(32))


def test_masks_and_resume_do_not_depend_on_the_layout(shards):
    masker = build_masker("symmetric", MODS, input_tokens=16, target_tokens=16)
    full = global_steps(shards, 1, 4, steps=6, masker=masker)
    for world, accum in ((4, 1), (2, 2)):
        resumed = global_steps(shards, world, accum, steps=3, masker=masker, start=3)  # stopped after step 3
        for a, b in zip(full[3:], resumed):
            for x, y in zip(a, b):
                assert all(torch.equal(x[m][k], y[m][k]) for m in x for k in x[m])


def test_too_few_shards_for_the_pieces_is_a_clear_error(shards):
    with pytest.raises(DataError, match="8 shard.*fewer than the 16 parts"):
        next(batch_loader(shards, None, BATCH, seed=0, world=4, accum=4))


def test_a_plain_stream_is_dealt_out_in_whole_pieces():
    samples = [{"x": torch.tensor([i])} for i in range(12)]
    one = [b["x"].flatten().tolist() for b in StreamBatches(samples, None, 3, seed=0, accum=2, stop=4)]
    ranks = [[b["x"].flatten().tolist() for b in StreamBatches(samples, None, 3, seed=0, rank=r, world=2, stop=2)]
             for r in range(2)]
    assert one == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert ranks == [[[0, 1, 2], [6, 7, 8]], [[3, 4, 5], [9, 10, 11]]]
