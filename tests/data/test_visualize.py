import numpy as np
import pytest

from open4m.data.synthetic import generate_sample
from open4m.data.visualize import contact_sheet, save_contact_sheet


def test_contact_sheet_draws_every_modality(tmp_path):
    s = generate_sample(2, 32)
    pictured = [k for k in s if k != "scene_graph"]  # the graph JSON has no picture
    sheet = contact_sheet(s, tile=64, columns=4)
    rows = -(-len(pictured) // 4)
    assert sheet.shape == (rows * (64 + 16), 4 * 64, 3) and sheet.dtype == np.uint8
    tiles = [sheet[r * 80 + 16:(r + 1) * 80, c * 64:(c + 1) * 64] for r in range(rows) for c in range(4)]
    assert all(t.std() > 0 for t in tiles[: len(pictured)])  # no blank tile for a real modality
    path = save_contact_sheet(s, tmp_path / "sheet.png", tile=48)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save_contact_sheet(s, tmp_path / "sheet.JPG", tile=48).read_bytes()[:3] == b"\xff\xd8\xff"  # as named
    with pytest.raises(ValueError, match=r"no image format for the suffix '\.txt'; use \.png or \.jpg"):
        save_contact_sheet(s, tmp_path / "sheet.txt", tile=48)
    assert not (tmp_path / "sheet.txt").exists()
    with pytest.raises(ValueError, match="nothing to draw"):
        contact_sheet({"scene_graph": {}})


def test_labeller_modalities_have_pictures():
    """hed_edge / person_mask maps, keypoints and ocr boxes on the photo, caption_emb states: no blank tile."""
    from open4m.data.visualize import modality_tile

    rgb = np.full((40, 60, 3), 90, np.uint8)
    soft = np.linspace(0, 1, 40 * 60, dtype=np.float32).reshape(40, 60)
    person = {"box": [0.1, 0.1, 0.6, 0.9], "keypoints": [[0.3, 0.3, 1.0]] * 33}
    tiles = {
        "hed_edge": modality_tile("hed_edge", soft, 32),
        "person_mask": modality_tile("person_mask", soft, 32),
        "keypoints": modality_tile("keypoints", [person], 32, rgb),
        "ocr": modality_tile("ocr", [{"box": [0.1, 0.2, 0.8, 0.5], "text": "exit"}], 32, rgb),
        "caption_emb": modality_tile("caption_emb", np.random.default_rng(0).normal(size=(9, 384)), 32),
    }
    for name, tile in tiles.items():
        assert tile is not None and tile.shape == (32, 32, 3) and tile.dtype == np.uint8, name
        assert tile.std() > 0, name
    assert tiles["hed_edge"].max() > 240 and tiles["hed_edge"].min() == 0  # [0, 1] read as full range, not black
    assert (modality_tile("keypoints", [], 32, rgb) == 90).all()  # nobody: the photo alone
