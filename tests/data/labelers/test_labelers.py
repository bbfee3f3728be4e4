import json

import numpy as np
import pytest

from open4m.data.labelers import CannyEdges, ColorPalette, ImageMetadata, InstanceEdges
from open4m.errors import ConfigError
from open4m.data.labelers.metadata import colorfulness, geometric_complexity, gray_entropy, occlusion_score


def _two_tone(h: int = 32, w: int = 32) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 4] = (200, 30, 30)
    img[:, w // 4:] = (20, 20, 220)
    return img


def test_canny_finds_the_step_edge_only():
    edges = CannyEdges()({"rgb": _two_tone()})
    assert edges.dtype == np.uint8 and set(np.unique(edges)) <= {0, 255}
    cols = np.nonzero(edges.any(0))[0]
    assert cols.size and np.all(np.abs(cols - 8) <= 2)


def test_instance_edges_trace_mask_boundaries():
    inst = np.zeros((10, 10), np.uint8)
    inst[3:6, 3:6] = 1
    e = InstanceEdges()({"instance": inst})
    assert e[4, 4] == 0 and e[3, 3] == 255 and e[2, 3] == 255 and e[0, 0] == 0


def test_labeler_names_missing_input():
    with pytest.raises(ValueError, match="needs modalities"):
        InstanceEdges()({"rgb": _two_tone()})


def test_palette_orders_colours_by_cluster_size():
    pal = ColorPalette()({"rgb": _two_tone()})
    assert isinstance(pal, list) and set(pal[0]) == {str(k) for k in range(1, 8)}
    two = np.array(pal[0]["2"])
    np.testing.assert_array_equal(two, [[20, 20, 220], [200, 30, 30]])  # blue covers 3/4 of the image
    assert len(pal[0]["7"]) == 2  # only two distinct colours exist
    assert ColorPalette()({"rgb": _two_tone()}) == pal


def test_metadata_measures():
    gray = np.full((16, 16, 3), 128, np.uint8)
    assert colorfulness(gray) == 0
    assert colorfulness(_two_tone()) > 50
    assert gray_entropy(gray[..., 0]) == 0
    assert gray_entropy(_two_tone()[..., 0]) == pytest.approx(-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)))
    flat = np.zeros((8, 8, 3), np.float32)
    flat[..., 2] = -1
    assert geometric_complexity(flat) == pytest.approx(0, abs=1e-9)
    depth = np.ones((8, 8), np.float32)
    assert occlusion_score(depth) == 0
    depth[:, 4:] = 3
    assert occlusion_score(depth) == pytest.approx(8 / 64)  # one pixel column marks the jump


def test_metadata_uses_the_modalities_present():
    sem = np.zeros((8, 8), np.uint8)
    sem[4:] = 1  # floor
    sem[:2, :2] = 3  # a sphere
    meta = ImageMetadata()({"rgb": np.zeros((8, 8, 3), np.uint8), "semseg": sem, "caption": "Two cats. One dog."})
    assert meta["walkability"] == pytest.approx(32 / 36) and meta["objectness"] == pytest.approx(4 / 36)
    assert meta["semantic_diversity"] == 2 and meta["caption_n_sentences"] == 2 and meta["caption_n_words"] == 4
    assert "occlusion_score" not in meta  # no depth, no guess
    with pytest.raises(ValueError, match="not in class_names"):
        ImageMetadata(class_names=("a", "b"), walkable_classes=("floor",))


def test_canny_at_a_coarser_scale_keeps_the_photo_size_and_thick_edges():
    rng = np.random.default_rng(0)
    img = np.zeros((240, 320, 3), np.uint8)
    img[:, 160:] = 200
    img[60:180, 40:100] = 120
    img = np.clip(img.astype(int) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
    fine, coarse = CannyEdges()({"rgb": img}), CannyEdges(size=60)({"rgb": img})
    assert coarse.shape == fine.shape == (240, 320) and set(np.unique(coarse)) <= {0, 255}
    # the same boundaries, drawn one pixel thick at 60 px, so about 4 photo pixels thick here
    assert 2.5 < (coarse > 0).mean() / (fine > 0).mean() < 6
    assert coarse[:, 150:170].any() and not coarse[:, 120:140].any()
    with pytest.raises(ConfigError, match="at least 8"):
        CannyEdges(size=4)
    assert CannyEdges(size=60).options()["size"] == 60  # recorded in the provenance


def test_label_cli_edge_size(tmp_path):
    from open4m.cli import main
    from open4m.data import codecs

    (tmp_path / "a.png").write_bytes(codecs.encode(_two_tone(), ".png", "rgb"))
    assert main(["label", "--data", str(tmp_path), "-m", "canny_edge", "--edge-size", "16"]) == 0
    assert json.loads((tmp_path / "labels.json").read_text())["canny_edge"]["options"]["size"] == 16
