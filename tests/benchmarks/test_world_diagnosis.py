"""benchmarks/world_diagnosis.py's caption -> RGB guidance sweep at toy scale."""

from __future__ import annotations

import re

import torch

BENCHMARK = "world_diagnosis"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it


def test_caption_guidance_prints_one_scored_row_per_setting(bench, capsys):
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples

    torch.set_num_threads(1)
    model = EvalModel.load(None)
    val = load_samples(limit=3, split="val", image_size=model.image_size, caption_order=model.caption_order)
    bench.caption_guidance(model, val, scales=(1.0, 3.0), temperatures=(1.0,))
    rows = re.findall(r"^  (\d\.\d) (\d\.\d) -> ([\d.]+), ([\d.]+), ([\d.]+) \(margin ([+-][\d.]+)\)$",
                      capsys.readouterr().out, re.M)
    assert [(cfg, temp) for cfg, temp, *_ in rows] == [("1.0", "1.0"), ("3.0", "1.0")]
    for *_, f1, count, other, margin in rows:
        assert 0 <= float(f1) <= 1 and 0 <= float(count) <= 1 and 0 <= float(other) <= 1
        assert abs(float(margin) - (float(f1) - float(other))) < 2e-3
