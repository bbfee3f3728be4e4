"""A folder of modalities is found without a folder map; stored crops are picked per epoch, in folders and shards."""

import logging

import numpy as np
import pytest
from PIL import Image

from open4m.data.formats import folder_to_shards
from open4m.sources import build_source
from open4m.sources.discover import discover, folder_candidates, folder_for
from open4m.sources.shards import TokenShards
from open4m.sources.tokens import TokenFolder, crop_index


def test_folder_names_match_registry_names_paths_and_tok_prefixes():
    assert folder_candidates("tok_rgb@224") == ["tok_rgb@224", "tok_rgb"]
    assert folder_candidates("caption") == ["tok_caption", "caption"]  # tokens beat raw text
    assert folder_candidates("rgb@224") == ["rgb@224", "rgb"]
    assert folder_for("tok_depth@224", ["tok_depth", "rgb"]) == "tok_depth"
    assert folder_for("tok_depth@224", ["rgb"], {"tok_depth@224": "my_depth"}) == "my_depth"
    found = discover("root", ["rgb", "tok_rgb", "tok_caption", "caption", "tok_dinov2_global", "crop_settings", "depth",
                              "my_feature", ".cache"])
    assert found.folders["tok_rgb@224"] == "tok_rgb" and found.folders["rgb@224"] == "rgb"
    assert found.folders["caption"] == "tok_caption" and found.folders["tok_dinov2_global"] == "tok_dinov2_global"
    assert found.unknown == ["my_feature"] and found.raw == ["depth"]
    assert "my_feature" in found.message("root") and "open4m tokenize" in found.message("root")
    assert discover("root", ["tok_rgb"], image_size=448).folders == {"tok_rgb@448": "tok_rgb"}
    with pytest.raises(ValueError, match=r"no folder for \['tok_normal@224'\].*folders there: \['rgb', 'tok_rgb'\]"):
        discover("root", ["rgb", "tok_rgb"], ["tok_rgb@224", "tok_normal@224"])
    with pytest.raises(ValueError, match="holds no folder of a registered modality"):
        discover("root", ["my_feature"])


def _write_root(root, n=3, crops=2):
    rng = np.random.default_rng(0)
    for i in range(n):
        for folder, value in {
            "rgb": None,
            "tok_rgb": rng.integers(0, 16384, (crops, 196)),
            "tok_semseg": rng.integers(0, 4096, (crops, 14, 14)),
            "tok_caption": np.array([[5000 + i, 5001, 0, 0]] * crops),
            "crop_settings": np.array([[0, 8, 64, 64, 0]] + [[4, 0, 40, 48, 1]] * (crops - 1)),
            "notes": None,
        }.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            if folder == "rgb":
                Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(root / "rgb" / f"s{i}.jpg")
            elif folder == "notes":
                (root / "notes" / f"s{i}.txt").write_text("not a modality")
            else:
                np.save(root / folder / f"s{i}.npy", value)


def test_token_folder_discovers_its_modalities_and_names_unknown_folders(tmp_path, caplog):
    _write_root(tmp_path)
    with caplog.at_level(logging.WARNING):
        src = build_source(str(tmp_path), None)
    assert isinstance(src, TokenFolder) and src.unknown == ["notes"] and "['notes']" in caplog.text
    assert set(src.names) == {"rgb@224", "tok_rgb@224", "tok_semseg@224", "caption"}
    sample = src[1]
    assert sample["rgb@224"].shape == (3, 224, 224) and sample["tok_semseg@224"].shape == (196,)
    assert sample["caption"].tolist() == [5001, 5001]  # the padding after the text is dropped
    with pytest.raises(ValueError, match="no folder for"):
        build_source(str(tmp_path), ["tok_depth@224"])


def test_stored_crops_are_drawn_from_seed_epoch_and_index_for_every_modality(tmp_path):
    _write_root(tmp_path, crops=3)
    src = TokenFolder(tmp_path, ["rgb@224", "tok_rgb@224", "tok_semseg@224"], seed=7)
    stored = np.load(tmp_path / "tok_rgb" / "s2.npy")
    semseg = np.load(tmp_path / "tok_semseg" / "s2.npy").reshape(3, -1)
    index = src.inner.keys.index("s2")
    picks = []
    for epoch in range(10):
        src.set_epoch(epoch)
        s = src[index]
        k = crop_index(7, epoch, index, 3)
        assert np.array_equal(s["tok_rgb@224"], stored[k]) and np.array_equal(s["tok_semseg@224"], semseg[k])
        picks.append(k)
    assert set(picks) == {0, 1, 2}
    val = TokenFolder(tmp_path, ["tok_rgb@224"], seed=7, split="val")
    val.set_epoch(4)
    assert np.array_equal(val[index]["tok_rgb@224"], stored[0])
    np.save(tmp_path / "tok_semseg" / "s0.npy", np.zeros((2, 196), np.int64))  # 2 crops beside 3: an error
    with pytest.raises(ValueError, match="same --n-crops"):
        src[src.inner.keys.index("s0")]


def test_shards_need_no_folder_map_and_pick_crops_per_epoch(tmp_path):
    _write_root(tmp_path / "folder", crops=2)
    folder_to_shards(tmp_path / "folder", tmp_path / "shards", samples_per_shard=2,
                     modalities=["rgb", "tok_rgb", "tok_caption", "crop_settings"], progress=False)
    shards = build_source(str(tmp_path / "shards"), ["rgb@224", "tok_rgb@224", "caption"], seed=3)
    assert isinstance(shards, TokenShards)
    seen = {}
    for epoch in range(6):
        shards.set_epoch(epoch)
        for s in shards:
            key = next(k for k in range(3) if s["caption"][0] == 5000 + k)
            stored = np.load(tmp_path / "folder" / "tok_rgb" / f"s{key}.npy")
            k = next(r for r in range(2) if np.array_equal(stored[r], s["tok_rgb@224"]))
            seen.setdefault(key, set()).add(k)
            assert s["rgb@224"].shape == (3, 224, 224)
    assert all(v == {0, 1} for v in seen.values())
    again = [s["tok_rgb@224"] for s in build_source(str(tmp_path / "shards"), ["tok_rgb@224"], seed=3)]
    shards.set_epoch(0)
    assert all(np.array_equal(a, b["tok_rgb@224"]) for a, b in zip(again, shards))  # a pure function of the seed
