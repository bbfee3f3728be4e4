import numpy as np
import pytest
import torch

from open4m.eval import BoxAP, DepthMetrics, NormalMetrics, SegmentationMetrics, box_iou, palette_distance, reconstruction_metrics


def test_depth_metrics_known_values():
    gt = np.full((4, 4), 2.0)
    m = DepthMetrics()
    m.update(gt * 1.1, gt)
    r = m.compute()
    assert r["abs_rel"] == pytest.approx(0.1) and r["rmse"] == pytest.approx(0.2) and r["delta1"] == 1.0
    m = DepthMetrics()
    m.update(gt * 1.5, gt)
    assert m.compute()["delta1"] == 0.0 and m.compute()["delta2"] == 1.0
    aligned = DepthMetrics(align="median")
    aligned.update(torch.tensor(gt * 3.0), gt)  # scale-only error vanishes
    assert aligned.compute()["abs_rel"] == pytest.approx(0.0, abs=1e-12)


def test_depth_ignores_invalid_and_rejects_shape_mismatch():
    gt = np.array([[1.0, 0.0]])
    m = DepthMetrics()
    m.update(np.array([[1.0, 50.0]]), gt)
    assert m.compute()["abs_rel"] == 0.0
    with pytest.raises(ValueError, match="differs from ground truth"):
        m.update(np.ones((2, 2)), gt)


def test_normal_angles():
    gt = np.zeros((2, 2, 3))
    gt[..., 2] = 1
    pred = gt.copy()
    pred[0, 0] = [1, 0, 0]  # 90 degrees off
    m = NormalMetrics()
    m.update(pred, gt)
    r = m.compute()
    assert r["mean_deg"] == pytest.approx(22.5) and r["median_deg"] == pytest.approx(0.0, abs=1e-5)
    assert r["within_11.25"] == pytest.approx(0.75)


def test_segmentation_confusion():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    m = SegmentationMetrics(num_classes=3)
    m.update(pred, gt)
    r = m.compute()
    assert r["pixel_acc"] == pytest.approx(0.75)
    assert r["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # class 2 absent everywhere: not averaged
    assert r["iou_per_class"][2] is None
    with pytest.raises(ValueError, match="class ids"):
        m.update(np.array([[5, 0, 0, 0]]), gt)


def test_box_iou_and_ap():
    assert box_iou([[0, 0, 1, 1]], [[0.5, 0, 1.5, 1]])[0, 0] == pytest.approx(1 / 3)
    ap = BoxAP()
    ap.update([([0, 0, 1, 1], "cube", 0.9)], [([0, 0, 1, 1], "cube")])
    ap.update([([0, 0, 1, 1], "cube", 0.8), ([2, 2, 3, 3], "sphere", 0.5)], [([2, 2, 3, 3], "cube")])
    r = ap.compute()
    # cube: one hit (0.9) then one miss (0.8), recall reaches 0.5 -> AP ~ 0.5 on the 101-point grid
    assert r["ap_50_per_class"]["cube"] == pytest.approx(51 / 101, abs=1e-4)
    assert r["map_50"] == pytest.approx(51 / 101, abs=1e-6)  # sphere has no ground truth: excluded
    empty = BoxAP()
    empty.update([], [([0, 0, 1, 1], "cube")])
    assert empty.compute()["map_50_95"] == 0.0


def test_palette_distance_matching():
    assert palette_distance([[0, 0, 0], [255, 0, 0]], [[255, 0, 0], [0, 0, 0]]) == 0.0
    assert palette_distance([[0, 0, 0]], [[0, 0, 0], [0, 0, 30]]) == pytest.approx(15.0)


def test_reconstruction_psnr():
    r = reconstruction_metrics(np.zeros(10), np.full(10, 0.2))
    assert r["mse"] == pytest.approx(0.04) and r["psnr"] == pytest.approx(10 * np.log10(4 / 0.04))
