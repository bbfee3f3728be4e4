"""benchmarks/world_diagnosis.py's caption -> RGB guidance sweep at toy scale."""

from __future__ import annotations

import re

import numpy as np

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


def test_colour_names_survive_shading(bench):
    from open4m.data.synthetic.scene import COLORS

    for name, rgb in COLORS.items():  # a shadowed object keeps its proportions
        for gain in (1.0, 0.5):
            assert bench._colour_name(np.asarray(rgb, np.float64) * gain) == name


def test_bound_prints_the_best_estimate_and_what_the_model_draws(bench, capsys):
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples

    torch.set_num_threads(1)
    model = EvalModel.load(None)
    val = load_samples(limit=3, split="val", image_size=model.image_size, caption_order=model.caption_order)
    bench.bound(model, val, "val", draws=2)
    out = capsys.readouterr().out
    best, infinite = map(float, re.search(r"mean of 2 renders ([\d.]+) \(of infinitely many ([\d.]+)\)", out).groups())
    assert infinite > best > 10  # fewer renders in the mean: a noisier estimate
    rows = re.findall(r"with (the scene's|another scene's) caption: one sample [\d.]+ dB; objects drawn in their "
                      r"captioned colour (\d+)/(\d+)", out)
    assert [r[0] for r in rows] == ["the scene's", "another scene's"]
    assert all(0 <= int(k) <= int(n) and int(n) > 0 for _, k, n in rows)
    assert re.search(r"floor colour \(\d scenes\): correlation", out)
