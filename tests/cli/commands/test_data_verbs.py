"""The data CLIs end to end on tiny data: synth -> convert -> convert back, label plain JPEGs."""

import filecmp

import numpy as np

from open4m.cli import main
from open4m.data import codecs
from open4m.data.formats import FolderDataset


def test_synth_convert_round_trip(tmp_path, capsys):
    world, shards, back = tmp_path / "w", tmp_path / "s", tmp_path / "b"
    assert main(["synth", "--out", str(world), "--n", "3", "--size", "32", "--split", "val"]) == 0
    ds = FolderDataset(world)
    assert {"rgb", "depth", "normal", "semseg", "instance", "det", "caption", "scene_graph", "canny_edge",
            "sam_edge", "color_palette", "metadata"} <= set(ds.modalities)
    assert ds[0]["scene_graph"]["split"] == "val" and sum(ds.missing.values()) == 0
    assert main(["convert", "--src", str(world), "--dst", str(shards), "--shard-size", "2"]) == 0
    assert main(["convert", "--src", str(shards), "--dst", str(back)]) == 0
    cmp = filecmp.dircmp(world, back)
    assert sorted(cmp.common_dirs) == sorted(ds.modalities)
    for m in ds.modalities:
        sub = filecmp.cmpfiles(world / m, back / m, [p.name for p in (world / m).iterdir()], shallow=False)
        assert not sub[1] and not sub[2], m
    assert main(["convert", "--src", str(world), "--dst", str(tmp_path / "x"), "--to", "folder"]) == 2
    assert "already in folder form" in capsys.readouterr().err


def test_label_plain_jpegs_and_resume(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(3):
        img = np.zeros((40, 48, 3), np.uint8)
        img[:, : 10 + 8 * i] = rng.integers(0, 255, 3)
        (tmp_path / f"photo{i}.jpg").write_bytes(codecs.encode(img, ".jpg", "rgb"))
    args = ["label", "--data", str(tmp_path), "-m", "canny_edge", "color_palette", "metadata"]
    assert main(args) == 0
    assert "canny_edge: 3 labeled" in capsys.readouterr().out
    for m, ext in (("canny_edge", ".png"), ("color_palette", ".json"), ("metadata", ".json")):
        assert sorted(p.name for p in (tmp_path / m).iterdir()) == [f"photo{i}{ext}" for i in range(3)]
    meta = codecs.decode((tmp_path / "metadata" / "photo0.json").read_bytes(), ".json", "metadata")
    assert meta["original_width"] == 48 and "walkability" not in meta
    (tmp_path / "metadata" / "photo1.json").unlink()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "canny_edge: 0 labeled, 3 already present" in out and "metadata: 1 labeled, 2 already present" in out
    assert main(["label", "--data", str(tmp_path), "-m", "sam_edge"]) == 2
    assert "needs the 'instance' modality" in capsys.readouterr().err


def test_label_normals_from_ground_truth_depth(tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--n", "1", "--size", "48"]) == 0
    (tmp_path / "normal").rename(tmp_path / "normal_gt")
    assert main(["label", "--data", str(tmp_path), "-m", "normal", "--fov", "50"]) == 0
    s = FolderDataset(tmp_path, modalities=["normal", "semseg"])[0]
    gt = codecs.decode(next((tmp_path / "normal_gt").iterdir()).read_bytes(), ".png", "normal")
    floor = s["semseg"] == 1
    assert np.median((s["normal"] * gt).sum(-1)[floor]) > 0.95  # --fov differs a little from the scene's


def test_synth_jpeg_rgb(tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--n", "1", "--size", "32", "--rgb-format", "jpg"]) == 0
    s = FolderDataset(tmp_path, modalities=["rgb"])[0]
    assert next((tmp_path / "rgb").iterdir()).suffix == ".jpg" and s["rgb"].shape == (32, 32, 3)


def test_synth_writes_captions_in_the_order_a_world_model_reads(tmp_path):
    from open4m.data.synthetic import CAPTION_ORDERS, generate_sample, seed_for

    assert main(["synth", "--out", str(tmp_path), "--n", "2", "--size", "32", "--split", "val", "--seed", "5",
                 "--caption-order", "left_to_right"]) == 0
    written = sorted((tmp_path / "caption").iterdir())
    assert [p.read_text() for p in written] == [
        generate_sample(seed_for("val", i), 32, labels=False, caption_order="left_to_right")["caption"] for i in (5, 6)]
    import argparse

    from open4m.cli.commands import synth

    sub = argparse.ArgumentParser().add_subparsers()
    synth.register(sub)
    choices = next(a.choices for a in sub.choices["synth"]._actions if a.dest == "caption_order")
    assert tuple(choices) == CAPTION_ORDERS  # the flag offers every order the world knows


def test_convert_leaves_out_a_sample_whose_only_file_is_corrupt(tmp_path, capsys):
    """A photo folder sample with one corrupt file (nothing else) was counted: 'wrote 3 samples', index.json
    num_samples 3, while the shards held 2 (and converting back wrote 2)."""
    import json

    for i in range(2):
        (tmp_path / "d" / "rgb").mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / "rgb" / f"{i}.png").write_bytes(
            codecs.encode(np.full((8, 8, 3), 40 * i, np.uint8), ".png", "rgb"))
    (tmp_path / "d" / "rgb" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    assert main(["-q", "convert", "--src", str(tmp_path / "d"), "--dst", str(tmp_path / "s")]) == 0
    out = capsys.readouterr()
    assert "wrote 2 samples" in out.out and "broken.png" in out.err
    assert json.loads((tmp_path / "s" / "index.json").read_text())["num_samples"] == 2
