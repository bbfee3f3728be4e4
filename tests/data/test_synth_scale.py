"""The issue's acceptance checks at full size (slow: run with `pytest -m slow tests/data`)."""

import filecmp

import pytest

from open4m.cli import main
from open4m.data.formats import FolderDataset
from open4m.data.synthetic import generate_sample, parse_caption, write_dataset

pytestmark = pytest.mark.slow


def test_synth_200_at_128_converts_losslessly(tmp_path):
    w, s, b = tmp_path / "w", tmp_path / "s", tmp_path / "b"
    assert main(["synth", "--out", str(w), "--n", "200", "--size", "128", "--workers", "2"]) == 0
    assert main(["convert", "--src", str(w), "--dst", str(s), "--shard-size", "64"]) == 0
    assert main(["convert", "--src", str(s), "--dst", str(b)]) == 0
    ds = FolderDataset(w)
    assert len(ds) == 200 and sum(ds.missing.values()) == 0
    for m in ds.modalities:
        names = [p.name for p in (w / m).iterdir()]
        match, mismatch, errors = filecmp.cmpfiles(w / m, b / m, names, shallow=False)
        assert len(match) == 200 and not mismatch and not errors


def test_parallel_writing_is_identical(tmp_path):
    write_dataset(tmp_path / "a", 12, size=32, workers=1, progress=False)
    write_dataset(tmp_path / "b", 12, size=32, workers=2, progress=False)
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.left_only and not cmp.right_only
    for m in cmp.common_dirs:
        names = [p.name for p in (tmp_path / "a" / m).iterdir()]
        assert not filecmp.cmpfiles(tmp_path / "a" / m, tmp_path / "b" / m, names, shallow=False)[1]


def test_captions_parse_back_on_500_scenes():
    for seed in range(500):
        s = generate_sample(seed, 96, labels=False)
        graph, parsed = s["scene_graph"], parse_caption(s["caption"])
        assert parsed["num_objects"] == len(graph["visible"]) == len(parsed["objects"])
