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


# -- depth: valid pixels and per-image median scaling ------------------------------------------------
def test_depth_median_scaling_is_per_image_and_ignores_invalid_truth():
    gt_a = np.array([[1.0, 2.0], [4.0, np.inf]])  # inf and 0 / nan are not ground truth
    gt_b = np.array([[3.0, 0.0], [6.0, np.nan]])
    m, raw = DepthMetrics(align="median"), DepthMetrics()
    for gt, scale in ((gt_a, 0.5), (gt_b, 7.0)):  # each image off by its own scale
        pred = np.where(np.isfinite(gt), gt * scale, 123.0)
        m.update(pred, gt)
        raw.update(pred, gt)
    r = m.compute()
    assert r["abs_rel"] == pytest.approx(0.0, abs=1e-12) and r["delta1"] == 1.0
    # unscaled: 3 pixels off by 0.5 (abs-rel 0.5) and 2 by 7 (abs-rel 6), pixel-weighted
    assert raw.compute()["abs_rel"] == pytest.approx((3 * 0.5 + 2 * 6.0) / 5)


def test_depth_median_scaling_keeps_structure_errors():
    gt = np.array([[1.0, 2.0, 4.0]])
    m = DepthMetrics(align="median")
    m.update(np.array([[2.0, 2.0, 2.0]]), gt)  # a constant: scaled to the median 2
    assert m.compute()["abs_rel"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert m.compute()["delta1"] == pytest.approx(1 / 3)


def test_normal_angle_of_a_known_tilt_and_invalid_truth():
    gt = np.zeros((1, 3, 3))
    gt[0, :, 2] = -1
    gt[0, 2] = 0  # no surface
    tilt = np.radians(30)
    pred = np.broadcast_to([0.0, np.sin(tilt), -np.cos(tilt)], gt.shape)
    m = NormalMetrics()
    m.update(pred, gt)
    r = m.compute()
    assert r["mean_deg"] == pytest.approx(30.0, abs=1e-4) and r["within_11.25"] == 0.0 and r["within_22.5"] == 0.0


# -- COCO box mAP, hand-computed ---------------------------------------------------------------------
def test_box_ap_perfect_predictions_score_one():
    ap = BoxAP()
    ap.update([([0, 0, .5, .5], "cat", 0.9), ([.5, .5, 1, 1], "dog", 0.8)], [([0, 0, .5, .5], "cat"), ([.5, .5, 1, 1], "dog")])
    ap.update([([.1, .1, .3, .4], "cat", 0.7)], [([.1, .1, .3, .4], "cat")])
    r = ap.compute()
    assert r["map_50"] == 1.0 and r["map_50_95"] == 1.0


def test_box_ap_empty_predictions_score_zero():
    ap = BoxAP()
    ap.update([], [([0, 0, 1, 1], "cat")])
    ap.update([], [([0, 0, .5, .5], "dog")])
    assert ap.compute()["map_50"] == 0.0 and ap.compute()["map_50_95"] == 0.0


def test_box_ap_multi_class_by_hand():
    ap = BoxAP()
    # cat: 2 ground truths; detections by score: hit (0.9), miss (0.8), hit (0.7)
    #   recall 0.5, 0.5, 1.0; precision 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3
    #   101-point: recalls 0.00..0.50 (51 points) read 1, 0.51..1.00 (50 points) read 2/3
    ap.update([([0, 0, 1, 1], "cat", 0.9), ([2, 2, 3, 3], "cat", 0.8), ([4, 0, 5, 1], "cat", 0.7)],
              [([0, 0, 1, 1], "cat"), ([4, 0, 5, 1], "cat")])
    # dog: one ground truth, one detection at IoU 0.64 (a 1x1 box vs 1x0.64 inside it): a hit up to 0.60
    ap.update([([0, 0, 1, 0.64], "dog", 0.5)], [([0, 0, 1, 1], "dog")])
    r = ap.compute()
    cat = (51 * 1.0 + 50 * 2 / 3) / 101
    assert r["ap_50_per_class"] == {"cat": pytest.approx(cat, abs=1e-4), "dog": 1.0}
    assert r["map_50"] == pytest.approx((cat + 1.0) / 2)
    # thresholds 0.50 0.55 0.60 hit the dog, 0.65 .. 0.95 (7) miss it; the cat's boxes are exact
    assert r["map_50_95"] == pytest.approx((cat + 3 / 10) / 2)


def test_box_ap_false_positives_of_other_images_and_classes():
    ap = BoxAP()
    ap.update([([0, 0, 1, 1], "cat", 0.4)], [([0, 0, 1, 1], "cat")])
    ap.update([([0, 0, 1, 1], "cat", 0.9), ([0, 0, 1, 1], "bird", 0.9)], [])  # an image without cats
    r = ap.compute()
    # the confident false positive comes first: precision 0 at recall 0, then 1/2 at recall 1 -> envelope 1/2
    assert r["map_50"] == pytest.approx(0.5) and "bird" not in r["ap_50_per_class"]


def test_box_ap_keeps_the_100_best_detections_per_image():
    ap = BoxAP()
    junk = [([2, 2, 3, 3], "cat", 0.9)] * 100
    ap.update(junk + [([0, 0, 1, 1], "cat", 0.1)], [([0, 0, 1, 1], "cat")])
    assert ap.compute()["map_50"] == 0.0  # the hit is the 101st cat: COCO never sees it
    other = BoxAP()
    other.update([(b, "dog", s) for b, _, s in junk] + [([0, 0, 1, 1], "cat", 0.1)], [([0, 0, 1, 1], "cat")])
    assert other.compute()["map_50"] == 1.0  # 100 per image and class: dogs do not push the cat out
    more = BoxAP(max_dets=101)
    more.update(junk + [([0, 0, 1, 1], "cat", 0.1)], [([0, 0, 1, 1], "cat")])
    assert more.compute()["map_50"] == pytest.approx(1 / 101)  # recall 1 reached at precision 1/101


# -- captions ----------------------------------------------------------------------------------------
def test_caption_metrics_by_hand():
    from open4m.metrics import CaptionMetrics, caption_words

    assert caption_words("A cat, sitting!") == ["a", "cat", "sitting"]
    m = CaptionMetrics()
    m.update("a cat sits", "A cat sits.")
    m.update("a dog runs", ["a dog runs"])
    r = m.compute()
    # unigram "a" is in every image's references: idf 0; the other 1-, 2- and 3-grams match exactly (cosine 1);
    # no 4-grams: 0. CIDEr-D = 10 * mean(1, 1, 1, 0) = 7.5; BLEU-4 needs a 4-gram match: 0
    assert r["cider_d"] == pytest.approx(7.5) and r["bleu4"] == 0.0

    m = CaptionMetrics()
    m.update("the cat sat on the mat", ["the cat sat on the mat", "a cat is on a mat"])
    assert m.compute()["bleu4"] == pytest.approx(1.0)
    m = CaptionMetrics()
    m.update("the cat sat on the", "the cat sat on the mat")
    # all n-grams match (precision 1) but c = 5 < r = 6: brevity penalty exp(1 - 6/5)
    assert m.compute()["bleu4"] == pytest.approx(np.exp(1 - 6 / 5))
    m.update("", "a dog")
    assert m.compute()["cider_d"] >= 0.0
    with pytest.raises(ValueError, match="reference"):
        m.update("a cat", "")


def test_cider_d_clips_and_damps_length():
    from open4m.metrics import CaptionMetrics

    def cider(cand):
        m = CaptionMetrics()
        m.update(cand, "red car on a road")
        m.update("blue sky", "blue sky")
        return m.compute()["cider_d"]

    assert cider("red car on a road") > cider("red red red car car on a road") > 0  # repeats are clipped
    assert cider("red car") < cider("red car on a road")


def test_depth_caption_to_rgb_scores_the_pixel_mean_of_its_samples():
    """The sample mean is the least-squares estimate: it beats each sample when they disagree on what is unknown."""
    from open4m.eval.scoring import score

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    samples = [{"rgb": t} for t in truth]
    # two samples per scene: truth plus or minus 40 on alternating pixels, so their mean is the truth
    noise = np.where(rng.random((2, 8, 8, 3)) < 0.5, 40, -40)
    draws = [np.stack([np.clip(t.astype(int) + n, 0, 255), np.clip(t.astype(int) - n, 0, 255)]).astype(np.uint8)
             for t, n in zip(truth, noise)]
    scores, baselines = score("depthcaption2rgb", draws, samples, 0)
    single, _ = score("depthcaption2rgb", [d[0] for d in draws], samples, 0)  # one image per scene: K = 1
    assert scores["psnr_sample"] == pytest.approx(single["psnr"]) == pytest.approx(single["psnr_sample"])
    assert scores["psnr"] > single["psnr"] + 10  # clipping aside, the mean is the truth
    assert set(baselines["mean image"]) == {"mse", "l1", "psnr"}


def test_depth_caption_to_rgb_scores_a_given_estimate_and_its_samples_beside_it():
    from open4m.eval.scoring import score

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    samples = [{"rgb": t} for t in truth]
    draws = [rng.integers(0, 256, (4, 8, 8, 3)).astype(np.uint8) for _ in truth]
    near = [np.clip(t.astype(np.float64) + rng.normal(0, 5, t.shape), 0, 255) for t in truth]  # float estimates
    scores, baselines = score("depthcaption2rgb", [{"estimate": e, "samples": d} for e, d in zip(near, draws)],
                              samples, 0)
    alone, _ = score("depthcaption2rgb", near, samples, 0)
    stacked, _ = score("depthcaption2rgb", draws, samples, 0)
    assert scores["psnr"] == pytest.approx(alone["psnr"]) and scores["psnr"] > 30
    assert scores["psnr_samples"] == pytest.approx(stacked["psnr"]) == pytest.approx(stacked["psnr_samples"])
    assert scores["psnr_sample"] == pytest.approx(stacked["psnr_sample"]) and scores["psnr_samples"] < 15


def test_caption_to_rgb_scores_each_scene_by_the_mean_of_its_draws():
    """Several draws of a scene: its read-back is their mean (one draw swings with the seed); `shape_f1_one` keeps
    the first draw's, the figure of one draw per scene."""
    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.data.synthetic.world import sequence_text
    from open4m.eval.scoring import score

    samples = [generate_sample(seed_for("val", i), 32) for i in range(3)]
    truth = [sequence_text("det", s) for s in samples]
    one, base_one = score("caption2rgb", [(None, t) for t in truth], samples, 0)
    assert one["shape_f1"] == one["shape_f1_one"] == pytest.approx(1.0) and one["count_acc"] == 1.0
    two, base_two = score("caption2rgb", [[(None, t), (None, "")] for t in truth], samples, 0)
    assert two["shape_f1"] == pytest.approx(0.5) and two["count_acc"] == pytest.approx(0.5)
    assert two["shape_f1_one"] == pytest.approx(1.0)
    other_one, other_two = (base["another scene's image"]["shape_f1"] for base in (base_one, base_two))
    assert other_two == pytest.approx(other_one / 2)  # another scene's draws, averaged the same way
