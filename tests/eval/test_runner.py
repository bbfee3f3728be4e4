import numpy as np
import pytest

from open4m.data.synthetic import generate_sample, seed_for, write_dataset
from open4m.data.synthetic import world
from open4m.eval.runner import TASKS, _score, edge_f1, load_folder, metadata_error, parse_tasks


@pytest.fixture(scope="module")
def samples():
    return [generate_sample(seed_for("val", i), 32) for i in range(4)]


def test_parse_tasks():
    assert parse_tasks("all") == list(TASKS)
    assert parse_tasks("depth, det") == ["depth", "det"]
    with pytest.raises(ValueError, match="unknown tasks \\['albedo'\\]"):
        parse_tasks("depth,albedo")
    with pytest.raises(ValueError, match="unknown tasks"):
        parse_tasks("")


def test_edge_f1():
    gt = np.zeros((4, 4), np.uint8)
    gt[0] = 255
    assert edge_f1(gt, gt)["f1"] == pytest.approx(1.0)
    assert edge_f1(np.zeros_like(gt), gt)["f1"] == 0.0
    half = np.zeros_like(gt)
    half[0, :2] = 255
    assert edge_f1(half, gt) == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})


def test_metadata_error_is_relative_and_penalises_missing_fields():
    assert metadata_error({"brightness": 100.0}, {"brightness": 100.0}, ["brightness"]) == 0.0
    assert metadata_error({"brightness": 125.5}, {"brightness": 100.0}, ["brightness"]) == pytest.approx(0.1)
    assert metadata_error({}, {"brightness": 100.0}, ["brightness"]) == 1.0


@pytest.mark.parametrize("task,key,name", [("depth", "abs_rel", "depth"), ("normal", "mean_deg", "normal")])
def test_perfect_dense_predictions_beat_the_baseline(samples, task, key, name):
    res = _score(task, [s[name] for s in samples], samples, 9)
    assert res["model"][key] < 1e-6 < res["baseline"][key]


def test_perfect_segmentation_and_edges(samples):
    seg = _score("semseg", [s["semseg"] for s in samples], samples, 9)
    assert seg["model"]["miou"] == pytest.approx(1.0) and seg["baseline"]["miou"] < 0.5
    edges = _score("edges", [s["canny_edge"] for s in samples], samples, 9)
    assert edges["model"]["f1"] == pytest.approx(1.0) and edges["baseline"]["f1"] == 0.0


def test_sequence_tasks_score_exact_texts_perfectly(samples):
    det = _score("det", [world.sequence_text("det", s) for s in samples], samples, 9)
    assert det["model"]["map_50"] > 0.99 and det["baseline"]["map_50"] == 0.0
    cap = _score("caption", [s["caption"] for s in samples], samples, 9)
    assert cap["model"]["count_acc"] == 1.0
    pal = _score("palette", [world.sequence_text("color_palette", s) for s in samples], samples, 9)
    assert pal["model"]["distance"] == 0.0 < pal["baseline"]["distance"]
    meta = _score("metadata", [world.sequence_text("metadata", s) for s in samples], samples, 9)
    assert meta["model"]["mae"] < meta["baseline"]["mae"]


def test_garbage_generations_score_as_misses(samples):
    det = _score("det", ["v0=1 v1=2"] * len(samples), samples, 9)
    assert det["model"]["parse_rate"] == 0.0 and det["model"]["map_50"] == 0.0
    pal = _score("palette", ["cube"] * len(samples), samples, 9)
    assert pal["model"]["parse_rate"] == 0.0


def test_load_folder_reads_what_synth_writes(tmp_path):
    write_dataset(tmp_path, 2, size=32, split="val", progress=False)
    loaded = load_folder(tmp_path)
    assert len(loaded) == 2
    fresh = generate_sample(seed_for("val", 0), 32)
    np.testing.assert_array_equal(loaded[0]["rgb"], fresh["rgb"])
    np.testing.assert_array_equal(loaded[0]["semseg"], fresh["semseg"])
    valid = fresh["depth"] > 0
    np.testing.assert_allclose(loaded[0]["depth"][valid], fresh["depth"][valid], rtol=1e-3, atol=1e-3)
    assert loaded[0]["caption"] == fresh["caption"]
    with pytest.raises(FileNotFoundError, match="open4m synth"):
        load_folder(tmp_path / "missing")
