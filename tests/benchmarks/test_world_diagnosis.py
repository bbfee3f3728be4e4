"""benchmarks/world_diagnosis.py at toy scale: caption -> RGB's guidance sweep, conditions and PSNR bound, and
depth + caption -> RGB's bound."""

from __future__ import annotations

import re

import pytest
import torch

BENCHMARK = "world_diagnosis"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it


@pytest.fixture(scope="module")
def shipped():
    """The shipped world model and its first 3 val scenes, as the benchmark reads them (one thread)."""
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples

    torch.set_num_threads(1)
    model = EvalModel.load(None)
    return model, load_samples(limit=3, split="val", image_size=model.image_size, caption_order=model.caption_order)


def test_caption_guidance_prints_one_scored_row_per_setting(bench, shipped, capsys):
    model, val = shipped
    bench.caption_guidance(model, val, scales=(1.0, 3.0), temperatures=(1.0,))
    rows = re.findall(r"^  (\d\.\d) (\d\.\d) -> ([\d.]+), ([\d.]+), ([\d.]+) \(margin ([+-][\d.]+)\)$",
                      capsys.readouterr().out, re.M)
    assert [(cfg, temp) for cfg, temp, *_ in rows] == [("1.0", "1.0"), ("3.0", "1.0")]
    for *_, f1, count, other, margin in rows:
        assert 0 <= float(f1) <= 1 and 0 <= float(count) <= 1 and 0 <= float(other) <= 1
        assert abs(float(margin) - (float(f1) - float(other))) < 2e-3


def test_bound_prints_the_best_estimate_and_what_the_model_draws(bench, shipped, capsys):
    model, val = shipped
    bench.bound(model, val, "val", draws=2)
    out = capsys.readouterr().out
    best, infinite = map(float, re.search(r"mean of 2 renders ([\d.]+) \(of infinitely many ([\d.]+)\)", out).groups())
    assert infinite > best > 10  # fewer renders in the mean: a noisier estimate
    rows = re.findall(r"^    (.+): [\d.]+ dB = sky ([\d.]+), floor ([\d.]+), wall ([\d.]+), objects ([\d.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["mean image", "best estimate", "photo's round trip",
                                    "model with the scene's caption, mean of 2 MaskGIT samples",
                                    "model with another scene's caption, mean of 2 MaskGIT samples",
                                    "model with the scene's caption, its posterior mean (64 draws, the eval's)",
                                    "model with another scene's caption, its posterior mean (64 draws, the eval's)"]
    assert all(float(x) >= 0 for r in rows for x in r[1:])
    assert re.search(r"floor colour \(\d scenes\): correlation", out)


def test_caption_conditions_prints_every_condition_with_its_margin(bench, shipped, capsys):
    from open4m.eval.runner import _rgb_from, read_back_shapes

    model, val = shipped
    bench.caption_conditions(model, val, batch=3)
    rows = re.findall(r"^  (.+?) +-> ([\d.]+), ([\d.]+), ([\d.]+) \(margin ([+-][\d.]+)\)$",
                      capsys.readouterr().out, re.M)
    assert [r[0] for r in rows] == [
        "the photo's round trip (the tokens' cap)", "caption alone", "caption, random order (ROAR)",
        "caption + true segmentation", "true segmentation alone", "caption + true depth", "caption + true boxes",
        "true boxes alone", "true boxes -> segmentation -> RGB", "caption -> segmentation -> RGB",
        "caption -> boxes -> RGB", "caption -> boxes -> segmentation -> RGB",
        "(the boxes drawn from the caption, as text)"]
    for _, f1, count, other, margin in rows:
        assert 0 <= float(f1) <= 1 and 0 <= float(count) <= 1 and 0 <= float(other) <= 1
        assert abs(float(margin) - (float(f1) - float(other))) < 2e-3

    eval_task = read_back_shapes(model, _rgb_from(model, [s["caption"] for s in val]), val)  # one batch, seed 0
    route = {(): "caption alone", ("det",): "caption -> boxes -> RGB", ("semseg",): "caption -> segmentation -> RGB",
             ("det", "semseg"): "caption -> boxes -> segmentation -> RGB"}[model.caption_rgb_chain]
    row = next(r for r in rows if r[0] == route)  # the row of the route the eval draws the shipped model's way
    assert row[1:4] == tuple(f"{v:.3f}" for v in (eval_task[0]["shape_f1"], eval_task[0]["count_acc"],
                                                      eval_task[1]["shape_f1"]))


def test_caption_layouts_are_scenes_the_caption_describes(bench):
    """Each layout holds the caption's objects, lists them left to right as the caption does and keeps its relations:
    its own caption, written left to right, names the same objects in the same order."""
    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.data.synthetic.captions import parse_caption, relations

    for index in range(4):
        sample = generate_sample(seed_for("val", index), 64, caption_order="left_to_right")
        said = parse_caption(sample["caption"])
        scenes = bench.caption_layouts(sample, draws=3, seed=5_000 + index * 100)
        assert len(scenes) == 3 and len({s.seed for s in scenes}) == 3  # three different layouts
        for scene in scenes:
            phrases = [o.phrase for o in scene.objects]
            where = scene.camera.to_camera([[o.x, o.height / 2, o.z] for o in scene.objects])
            left_to_right = [phrases[i] for i in sorted(range(len(phrases)), key=lambda i: where[i, 0] / where[i, 2])]
            assert left_to_right == [" ".join(o.values()) for o in said["objects"]]
            facts = {(phrases[i], rel, phrases[j]) for i, rel, j in relations(scene, list(range(len(phrases))))}
            for r in said["relations"]:
                assert (" ".join(r["subject"].values()), r["relation"], " ".join(r["object"].values())) in facts
    empty = {"caption": "The room is empty.", "scene_graph": {"seed": 0, "visible": []}}
    rooms = bench.caption_layouts(empty, draws=2, seed=7)
    assert len(rooms) == 2 and all(room.objects == () for room in rooms)


def test_caption_bound_prints_the_mean_image_the_model_and_the_best_estimate(bench, shipped, capsys):
    model, val = shipped
    bench.caption_bound(model, val, "val", draws=2)
    out = capsys.readouterr().out
    mean, floor = map(float, re.search(r"\| the mean image / \+ 2 dB \| ([\d.]+) / ([\d.]+) \|", out).groups())
    assert floor == pytest.approx(mean + 2, abs=0.011)
    assert re.search(r"\| the model's posterior mean \(64 draws.*\| [\d.]+ \|", out)
    best, infinite = map(float, re.search(r"mean of 2 renders .* \| ([\d.]+) / ([\d.]+) \|", out).groups())
    assert infinite > best > 10


def test_rgb_context_prints_the_loss_for_each_number_of_tokens_shown(bench, shipped, capsys):
    model, val = shipped
    bench.rgb_context(model, val, shown=(0, 128, 256))
    rows = re.findall(r"^ +(\d+) +([\d.]+) \( *(\d+) tokens\) +([\d.]+) \( *(\d+) tokens\)", capsys.readouterr().out, re.M)
    assert [int(r[0]) for r in rows] == [0, 128]  # a count that leaves no token to score is dropped
    (_, none, boxes_none, caption_none, cap_none), (_, half, boxes_half, caption_half, cap_half) = rows
    assert int(boxes_half) - int(boxes_none) == 128 == int(cap_half) - int(cap_none)  # the k tokens join the input
    assert int(boxes_none) > int(cap_none)  # the boxes' tokens too
    assert float(none) > float(half) > 0 and float(caption_none) > float(caption_half) > 0  # context helps
