"""benchmarks/estimate.py at toy scale: one scored, timed row per estimator."""

from __future__ import annotations

import re

import torch

BENCHMARK = "estimate"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it


def test_every_estimator_gets_a_scored_timed_row(bench, capsys):
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples

    torch.set_num_threads(1)
    model = EvalModel.load(None)
    val = load_samples(limit=2, split="val", image_size=model.image_size, caption_order=model.caption_order)
    wanted = (("mean of 2 MaskGIT samples", "maskgit", 2), ("mean of 2 ROAR samples", "roar", 2),
              ("estimate, 4 draws", "estimate", 4))
    rows = bench.run(model, val, wanted)
    assert [r[0] for r in rows] == [w[0] for w in wanted]
    assert all(10 < psnr < 60 and ms > 0 and rss > 0 for _, psnr, ms, rss in rows)
    printed = capsys.readouterr().out
    assert re.search(r"^the mean image \(baseline\)\s+[\d.]+\s+-", printed, re.M)
    assert re.search(r"^estimate, 4 draws\s+[\d.]+\s+[\d.]+\s+\d+$", printed, re.M)
