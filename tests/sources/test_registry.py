"""The registry: every source by name or recipe string, listed, extended, with errors that name the fix."""

from pathlib import Path

import numpy as np
import pytest
import torch

from open4m.data.codecs import encode
from open4m.sources import (ImageFiles, build_source, is_generated, list_sources, register_source, resolve_spec_path,
                            source_info)
from open4m.sources.labelled import ImageFolderSource, PairedFolderSource, WorldSource


def test_every_family_lists_its_sources_with_their_recipe_strings():
    names = {(i.family, i.name): i for i in list_sources()}
    assert {"synthetic", "world", "tokens", "shards", "mixture"} <= {n for f, n in names if f == "tokens"}
    assert {"world", "classes", "paired", "folder"} <= {n for f, n in names if f == "labelled"}
    assert {"images"} <= {n for f, n in names if f == "images"}
    assert {"world", "text", "folder", "shards", "mixture"} <= {n for f, n in names if f == "aligned"}
    assert names["tokens", "world"].form == "world | world:DIR" and names["tokens", "world"].summary
    assert [i.name for i in list_sources("labelled")][0] == "world"
    assert is_generated("synthetic") and is_generated("world") and is_generated("world:/some/dir")
    assert not is_generated("/data/tokens") and not is_generated([{"source": "synthetic"}])
    assert is_generated("world", "labelled") and not is_generated("classes:/x", "labelled")


def test_unknown_names_and_paths_name_the_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthetic, world \\| world:DIR"):
        build_source(str(tmp_path / "nowhere"), ["caption"])
    with pytest.raises(KeyError, match="no tokens source named 'nope'"):
        source_info("nope")
    with pytest.raises(KeyError, match="unknown source family"):
        list_sources("videos")
    with pytest.raises(ValueError, match="takes no argument"):
        build_source("synthetic:3", ["caption"])
    with pytest.raises(ValueError, match="registered already"):
        register_source("synthetic", lambda arg: [])


def test_a_registered_source_is_built_by_name_and_by_path(tmp_path):
    calls = []

    def build_counts(arg, *, modality_names, seed=0):  # takes only the options it needs
        calls.append((arg, seed))
        return [{m: [1000 + seed] for m in modality_names}]

    register_source("counts", build_counts, form="counts[:N]", summary="a test source",
                    matches=lambda p: p.suffix == ".counts")
    try:
        assert build_source("counts:7", ["caption"], seed=3, image_size=224, folders={}) == [{"caption": [1003]}]
        build_source(str(tmp_path / "x.counts"), ["caption"])
        assert calls == [("7", 3), (str(tmp_path / "x.counts"), 0)]
        assert source_info("counts").summary == "a test source"
    finally:
        register_source("counts", build_counts, overwrite=True)
        from open4m.sources import registry

        del registry._REGISTRY["tokens"]["counts"]


def test_relative_paths_resolve_against_a_recipe_folder():
    base = Path("/recipes")
    assert resolve_spec_path("synthetic", base) == "synthetic"
    assert resolve_spec_path("world", base) == "world"
    assert resolve_spec_path("world:models/w", base) == "world:/recipes/models/w"
    assert resolve_spec_path("world:/abs/w", base) == "world:/abs/w"
    assert resolve_spec_path("data/tokens", base) == "/recipes/data/tokens"
    assert resolve_spec_path("https://host/shards", base) == "https://host/shards"
    assert resolve_spec_path([{"source": "data/a", "weight": 1}, {"source": "synthetic"}], base) == [
        {"source": "/recipes/data/a", "weight": 1}, {"source": "synthetic"}]


def _write(path, value, modality):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(value, path.suffix, modality))


def test_labelled_sources_for_fine_tuning(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        for i in range(2):
            _write(tmp_path / "cls" / cls / f"{i}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "rgb")
    for i in range(3):
        _write(tmp_path / "pairs" / "rgb" / f"s{i}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "rgb")
        _write(tmp_path / "pairs" / "depth" / f"s{i}.npy", rng.uniform(1, 5, (8, 8)).astype(np.float32), "depth")
    classes = build_source(str(tmp_path / "cls"), family="labelled", task="classification")
    assert isinstance(classes, ImageFolderSource) and classes.classes == ["cats", "dogs"] and classes[3]["label"] == 1
    assert len(build_source(f"classes:{tmp_path / 'cls'}", family="labelled", classes=["cats", "dogs"])) == 4
    pairs = build_source(str(tmp_path / "pairs"), family="labelled", task="depth")
    assert isinstance(pairs, PairedFolderSource) and set(pairs[0]) == {"rgb", "depth"}
    assert len(build_source(f"paired:{tmp_path / 'pairs'}", family="labelled", task="depth")) == 3
    world = build_source("world", family="labelled", task="segmentation", split="val", num_samples=2, image_size=16)
    assert isinstance(world, WorldSource) and world[0]["semseg"].shape == (16, 16)
    with pytest.raises(ValueError, match="unknown task"):
        build_source("world", family="labelled", task="captioning")



def test_a_paired_target_of_another_size_names_both_files(tmp_path):
    """One crop cuts the image and its map, so their sizes must agree; the error came from the crop without a
    file name ('image-like modalities of one sample must share a size'), in the middle of a fine-tuning run."""
    from open4m.errors import DataError

    rng = np.random.default_rng(0)
    _write(tmp_path / "rgb" / "ok.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "rgb")
    _write(tmp_path / "semseg" / "ok.png", rng.integers(0, 9, (8, 8), dtype=np.uint8), "semseg")
    _write(tmp_path / "rgb" / "small.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "rgb")
    _write(tmp_path / "semseg" / "small.png", rng.integers(0, 9, (4, 6), dtype=np.uint8), "semseg")
    pairs = build_source(str(tmp_path), family="labelled", task="segmentation")
    assert pairs[0]["semseg"].shape == (8, 8)
    with pytest.raises(DataError, match=r"rgb/small\.png is 8x8 but \S+semseg/small\.png is 6x4 \(width x height\)"):
        pairs[1]

class _Tokenizer:
    """What ImageFiles reads of a tokenizer: its preprocessing and image size."""

    def __init__(self):
        from open4m.tokenizers.preprocess import Preprocessor

        self.preprocessor = Preprocessor(input="image", size=16)
        self.config = type("Config", (), {"image_size": 16, "patch_size": 8})()


def test_image_files_feed_a_tokenizer(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(tmp_path / "a" / f"{i}.png", rng.integers(0, 255, (20, 24, 3), dtype=np.uint8), "rgb")
    files = build_source(str(tmp_path), family="images", model=_Tokenizer())
    assert isinstance(files, ImageFiles) and len(files) == 3
    assert files[0].shape == (3, 16, 16) and files[0].dtype == torch.float32
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFiles(tmp_path / "none", _Tokenizer())
