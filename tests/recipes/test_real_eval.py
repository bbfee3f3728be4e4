"""The motorcycle evaluation set: metric depth and normals from skimage's ground-truth stereo disparity."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the motorcycle scene ships inside scikit-image (the labelers extra)")

from open4m.cli import main  # noqa: E402
from open4m.recipes.real_eval import (MOTORCYCLE, motorcycle_samples, normals_with_edges, right_disparity,  # noqa: E402
                                      write_motorcycle)


@pytest.fixture(scope="module")
def stereo():
    from skimage import data

    return data.stereo_motorcycle()


def test_calibration_is_the_docstrings_and_depth_follows_middlebury(stereo):
    from skimage import data

    doc = data.stereo_motorcycle.__doc__
    for value in (MOTORCYCLE.focal_px, MOTORCYCLE.cx, MOTORCYCLE.cy, MOTORCYCLE.doffs_px, MOTORCYCLE.baseline_mm):
        assert f"{value:.3f}" in doc
    assert MOTORCYCLE.depth(np.array([10.0]))[0] == pytest.approx(994.978 * 193.001 / (10.0 + 31.086) / 1000, rel=1e-6)
    depth = MOTORCYCLE.depth(stereo[2])
    valid = depth > 0
    assert valid.mean() == pytest.approx(np.isfinite(stereo[2]).mean())  # unknown disparity -> no depth
    assert 2.0 < depth[valid].min() < depth[valid].max() < 5.1  # a motorcycle in a garage, 2-5 m away


def _photometric(src, dst, disparity, sign):
    """Mean |src(x) - dst(x + sign * d)| over the pixels with a disparity (rounded correspondences)."""
    h, w = disparity.shape
    ys, xs = np.nonzero(np.isfinite(disparity))
    xt = np.round(xs + sign * disparity[ys, xs]).astype(int)
    keep = (xt >= 0) & (xt < w)
    return np.abs(src[ys[keep], xs[keep]].astype(float) - dst[ys[keep], xt[keep]].astype(float)).mean()


def test_disparity_direction_and_the_derived_right_view(stereo):
    left, right, disp = stereo
    assert _photometric(left, right, disp, -1) < 0.5 * _photometric(left, right, disp, +1)  # left x <-> right x - d
    disp_r = right_disparity(disp)
    assert 0.75 < np.isfinite(disp_r).mean() < np.isfinite(disp).mean()  # occlusions have no ground truth
    derived = _photometric(right, left, disp_r, +1)
    assert derived < _photometric(left, right, disp, -1)  # as consistent as the given left ground truth
    assert derived < 0.5 * _photometric(right, left, disp_r + 4, +1)
    # a plane slanted in x warps to a plane: interpolated, not rounded
    ramp = np.tile(np.linspace(10, 20, 50), (2, 1))
    warped = right_disparity(ramp)
    ok = np.isfinite(warped)
    xs = np.nonzero(ok[0])[0]
    np.testing.assert_allclose(warped[0, xs], np.interp(xs, np.arange(50) - ramp[0], ramp[0]), atol=1e-9)


def test_normals_face_the_camera_and_skip_depth_edges():
    side, f = 64, 100.0
    fov = math.degrees(2 * math.atan(side / 2 / f))
    depth = np.full((side, side), 2.0)
    depth[:, 40:] = 4.0  # a step: the pixels along it have no normal
    depth[:3, :3] = 0.0
    n = normals_with_edges(depth, fov)
    valid = np.linalg.norm(n, axis=-1) > 0.5
    np.testing.assert_allclose(n[10, 10], [0, 0, -1], atol=1e-6)  # a fronto-parallel plane faces the camera
    assert not valid[:, 39:41].any() and not valid[:4, :3].any() and not valid[:3, :4].any() and valid[10:50, 10:30].all()


def test_samples_and_the_written_folder(tmp_path):
    samples = motorcycle_samples(views=["left", "right"], crops=[(120, 96)], factors=[1, 2])
    assert [s["__key__"] for s in samples] == ["left_120x96_f1", "left_120x96_f2", "right_120x96_f1", "right_120x96_f2"]
    assert samples[0]["rgb"].shape == (96, 120, 3) and samples[1]["depth"].shape == (48, 60)
    assert samples[0]["caption"] == "Rectified stereo image pair with ground-truth disparities."
    n = samples[0]["normal"]
    norms = np.linalg.norm(n, axis=-1)
    assert ((norms < 1e-6) | (np.abs(norms - 1) < 1e-4)).all() and (norms > 0.5).mean() > 0.5
    assert not (norms > 0.5)[samples[0]["depth"] == 0].any()  # no normal without depth

    from open4m.eval.runner import load_folder

    names = write_motorcycle(tmp_path / "mc", views=["left"], crops=[(120, 96)], factors=[2])
    loaded = load_folder(tmp_path / "mc")
    assert names == ["left_120x96_f2"] and [s["__key__"] for s in loaded] == names
    np.testing.assert_allclose(loaded[0]["depth"], samples[1]["depth"], atol=6e-4)  # 16-bit millimetres
    assert json.loads((tmp_path / "mc" / "motorcycle.json").read_text())["calibration"]["focal_px"] == 994.978


def test_the_cli_writes_the_set_and_eval_scores_it(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "mc"
    assert main(["dataset", "motorcycle", "--out", str(out), "--crops", "160x128,96x96", "--factors", "1,2"]) == 0
    assert "wrote 8 motorcycle samples" in capsys.readouterr().out
    assert main(["eval", "--model", str(tiny_bundle), "--data", str(out), "--tasks", "depth,normal,semseg",
                 "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "8 samples" in table and "depth                 8  scaled_delta1" in table
    assert "normal                8  mean_deg" in table and "semseg            skipped: the data lacks semseg" in table
    assert "2 = facing the camera" in table
    # a folder of something else is never written into; bad options are one-line errors
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["dataset", "motorcycle", "--out", str(tmp_path / "other")]) == 2
    assert main(["dataset", "motorcycle", "--out", str(tmp_path / "x"), "--crops", "800x800"]) == 2
    assert main(["dataset", "motorcycle", "--out", str(tmp_path / "y"), "--crops", "12"]) == 2
    assert main(["dataset", "motorcycle", "--out", str(tmp_path / "z"), "--views", "top"]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "--overwrite" in err and "leaves the" in err and "WxH" in err and "left and/or right" in err
