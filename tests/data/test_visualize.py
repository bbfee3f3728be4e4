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
    with pytest.raises(ValueError, match="nothing to draw"):
        contact_sheet({"scene_graph": {}})
