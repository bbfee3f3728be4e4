import filecmp
import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from open4m.atomic import write_atomic
from open4m.data import codecs
from open4m.data.formats import (CorruptFileWarning, FolderDataset, ShardDataset, folder_to_shards,
                                 shards_to_folder)
from open4m.data.synthetic import write_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_dataset(root, 7, size=32, progress=False)
    return root


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_codecs_round_trip_every_form():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 20, (8, 9)).astype(np.float32)
    back = codecs.decode(codecs.encode(depth, ".png", "depth"), ".png", "depth")
    np.testing.assert_allclose(back, depth, atol=0.5 / codecs.DEPTH_PNG_SCALE)
    normal = rng.normal(size=(8, 9, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    np.testing.assert_allclose(codecs.decode(codecs.encode(normal, ".png", "normal"), ".png", "normal"), normal, atol=1 / 127)
    seg = rng.integers(0, 134, (8, 9)).astype(np.uint8)
    np.testing.assert_array_equal(codecs.decode(codecs.encode(seg, ".png", "semseg_coco"), ".png", "semseg_coco"), seg)
    soft = rng.uniform(0, 1, (8, 9)).astype(np.float32)  # hed_edge / person_mask: [0, 1] maps as 8-bit PNG
    np.testing.assert_allclose(codecs.decode(codecs.encode(soft, ".png", "hed_edge"), ".png", "hed_edge"), soft,
                               atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError, match="float array"):
        codecs.encode((soft * 255).astype(np.uint8), ".png", "person_mask")
    tokens = rng.integers(0, 8192, (3, 196)).astype(np.int16)
    np.testing.assert_array_equal(codecs.decode(codecs.encode(tokens, ".npy", "tok_rgb@224"), ".npy", "tok_rgb@224"), tokens)
    assert codecs.decode(codecs.encode({"a": [1, 2]}, ".json", "det"), ".json", "det") == {"a": [1, 2]}
    assert codecs.decode(b" a cat \n", ".txt", "caption") == "a cat"
    with pytest.raises(ValueError, match="unsupported file type"):
        codecs.decode(b"", ".heic", "rgb")
    with pytest.raises(ValueError, match="16-bit"):
        codecs.decode(codecs.encode(seg, ".png", "semseg"), ".png", "depth")


def test_folder_dataset_aligns_by_relative_path(world):
    ds = FolderDataset(world)
    assert len(ds) == 7 and "rgb" in ds.modalities and "caption" in ds.modalities
    s = ds[0]
    assert s["rgb"].shape == (32, 32, 3) and s["depth"].dtype == np.float32 and isinstance(s["caption"], str)
    assert s["__key__"] == ds.keys[0]


def test_missing_modality_is_reported_not_filled(tmp_path):
    for key, mods in {"a/x": ("rgb", "caption"), "a/y": ("rgb",), "b/z": ("caption",)}.items():
        for m in mods:
            ext = ".png" if m == "rgb" else ".txt"
            value = np.zeros((4, 4, 3), np.uint8) if m == "rgb" else "hello"
            write_atomic(tmp_path / m / f"{key}{ext}", codecs.encode(value, ext, m))
    ds = FolderDataset(tmp_path)
    assert ds.keys == ["a/x", "a/y", "b/z"] and ds.missing == {"rgb": 1, "caption": 1}
    assert "caption" not in ds[1] and "rgb" not in ds[2]
    req = FolderDataset(tmp_path, required=["rgb"])
    assert req.keys == ["a/x", "a/y"] and req.excluded == 1
    assert "1 missing" in ds.report()
    with pytest.raises(ValueError, match="no folder for modalities"):
        FolderDataset(tmp_path, modalities=["depth"])


def test_corrupt_file_is_skipped_and_counted(tmp_path, world):
    root = tmp_path / "w"
    folder_to_shards(world, tmp_path / "s", progress=False)
    shards_to_folder(tmp_path / "s", root, progress=False)
    bad = sorted((root / "rgb").iterdir())[1]
    bad.write_bytes(b"not a png")
    ds = FolderDataset(root, modalities=["rgb", "caption"], required=["rgb"])
    with pytest.warns(CorruptFileWarning, match="corrupt"):
        samples = [ds[i] for i in range(len(ds))]
    assert ds.corrupt["rgb"] == 1
    assert samples[1]["__key__"] == ds.keys[2]
    loose = FolderDataset(root, modalities=["rgb", "caption"])
    with pytest.warns(CorruptFileWarning):
        s = loose[1]
    assert "rgb" not in s and "caption" in s


def test_convert_round_trip_is_lossless(tmp_path, world):
    index = folder_to_shards(world, tmp_path / "shards", samples_per_shard=3, progress=False)
    assert index["num_shards"] == 3 and index["num_samples"] == 7
    with tarfile.open(tmp_path / "shards" / "rgb" / "shard-00000.tar") as tf:
        names_rgb = [n.split(".")[0] for n in tf.getnames()]
    with tarfile.open(tmp_path / "shards" / "depth" / "shard-00000.tar") as tf:
        assert [n.split(".")[0] for n in tf.getnames()] == names_rgb  # identical keys across modalities
    assert shards_to_folder(tmp_path / "shards", tmp_path / "back", progress=False) == 7
    _same_tree(world, tmp_path / "back")


def test_shards_stream_decoded_and_split_across_workers(tmp_path, world):
    import torch

    folder_to_shards(world, tmp_path / "s", samples_per_shard=2, progress=False)
    ref = {s["__key__"]: s for s in FolderDataset(world)}
    ds = ShardDataset(str(tmp_path / "s"), ["rgb", "depth", "caption"], shuffle_shards=True, shuffle_buffer=3, seed=1)
    keys = []
    for s in ds:
        keys.append(s["__key__"])
        np.testing.assert_array_equal(s["rgb"], ref[s["__key__"]]["rgb"])
        np.testing.assert_array_equal(s["depth"], ref[s["__key__"]]["depth"])
    assert sorted(keys) == sorted(ref) and keys != sorted(ref)
    assert keys == [s["__key__"] for s in ds]  # same epoch, same order
    ds.set_epoch(1)
    assert [s["__key__"] for s in ds] != keys
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(s["__key__"] for s in loader) == sorted(ref)  # each shard read by exactly one worker


def test_corrupt_bytes_in_shards_are_skipped(tmp_path, world):
    folder_to_shards(world, tmp_path / "s", samples_per_shard=10, progress=False)
    tar_path = tmp_path / "s" / "rgb" / "shard-00000.tar"
    with tarfile.open(tar_path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    with tarfile.open(tar_path, "w") as tf:
        for i, (m, data) in enumerate(members):
            data = b"garbage" if i == 0 else data
            m.size = len(data)
            tf.addfile(m, io.BytesIO(data))
    ds = ShardDataset(str(tmp_path / "s"), ["rgb", "caption"], required=["rgb"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(ds)
    assert len(out) == 6 and ds.corrupt["rgb"] == 1
    assert any(issubclass(w.category, CorruptFileWarning) for w in caught)


def test_shards_stream_through_pipe_urls(tmp_path, world):
    index = folder_to_shards(world, tmp_path / "s", samples_per_shard=3, progress=False)
    with pytest.raises(ValueError, match="pass num_shards"):
        ShardDataset(f"pipe:cat {tmp_path / 's'}", ["rgb"])
    ds = ShardDataset(f"pipe:cat {tmp_path / 's'}", ["rgb", "caption"], num_shards=index["num_shards"])
    got = {s["__key__"]: s["caption"] for s in ds}
    assert got == {s["__key__"]: s["caption"] for s in FolderDataset(world, modalities=["caption"])}


def test_edge_and_mask_files_read_as_one_grey_channel():
    """Edges and SAM masks as users save them: 1-bit, 8-bit, 16-bit or RGB files, all {0, 255} uint8 (H, W)."""
    from PIL import Image

    edge = np.zeros((6, 8), np.uint8)
    edge[2] = 255
    files = {"L": Image.fromarray(edge), "1": Image.fromarray(edge > 0), "RGB": Image.fromarray(edge).convert("RGB"),
             "I;16": Image.fromarray(edge.astype(np.uint16) * 257)}
    for mode, im in files.items():
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        for modality in ("canny_edge", "sam_edge", "sam_mask"):
            out = codecs.decode(buf.getvalue(), ".png", modality)
            assert out.dtype == np.uint8 and out.shape == (6, 8) and np.array_equal(out, edge), (mode, modality)
    assert np.array_equal(codecs.decode(codecs.encode(edge > 0, ".png", "sam_mask"), ".png", "sam_mask"), edge)
    assert np.array_equal(codecs.decode(codecs.encode(edge / 255.0, ".png", "canny_edge"), ".png", "canny_edge"), edge)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        codecs.encode(edge * 2.0, ".png", "canny_edge")
    assert codecs.is_aligned_image("canny_edge") and codecs.is_aligned_image("hed_edge")
    assert not codecs.is_aligned_image("sam_mask") and not codecs.is_aligned_image("caption")
