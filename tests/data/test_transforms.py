import numpy as np
import pytest
import torch

from open4m.data.synthetic import generate_sample
from open4m.data.transforms import (IMAGENET_MEAN, AlignedTransform, Crop, augment, center_crop, clean_caption,
                                    random_resized_crop, to_tensors)


@pytest.fixture(scope="module")
def sample():
    s = generate_sample(4, 64, labels=False)
    return {k: v for k, v in s.items() if k != "scene_graph"}


def test_flip_mirrors_images_normals_and_boxes(sample):
    out = augment(sample, Crop(0, 0, 64, 64, flip=True), 64)
    np.testing.assert_array_equal(out["rgb"], sample["rgb"][:, ::-1])
    np.testing.assert_array_equal(out["semseg"], sample["semseg"][:, ::-1])
    np.testing.assert_allclose(out["normal"][..., 0], -sample["normal"][:, ::-1, 0], atol=1e-5)
    np.testing.assert_allclose(out["normal"][..., 1:], sample["normal"][:, ::-1, 1:], atol=1e-5)
    for a, b in zip(out["det"]["instances"], sample["det"]["instances"]):
        x0, y0, x1, y1 = b["boxes"]
        np.testing.assert_allclose(a["boxes"], [1 - x1, y0, 1 - x0, y1])
    np.testing.assert_array_equal(out["crop_settings"], [0, 0, 64, 64, 1])


def test_random_crop_keeps_every_modality_aligned(sample):
    rng = np.random.default_rng(0)
    for _ in range(5):
        crop = random_resized_crop(64, 64, rng, scale=(0.3, 0.8))
        out = augment(sample, crop, 48)
        inst, sem = out["instance"], out["semseg"]
        assert inst.shape == sem.shape == out["depth"].shape == out["rgb"].shape[:2] == (48, 48)
        np.testing.assert_array_equal(inst > 0, sem >= 3)
        np.testing.assert_array_equal(out["depth"] > 0, sem > 0)
        assert set(np.unique(out["depth"])) <= set(np.unique(sample["depth"]))  # nearest: no invented depths
        kept = {d["class_name"] for d in out["det"]["instances"]}
        visible = {sample["det"]["instances"][k - 1]["class_name"] for k in np.unique(inst) if k}
        assert visible <= kept
        for d in out["det"]["instances"]:
            x0, y0, x1, y1 = d["boxes"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_boxes_follow_the_crop_exactly(sample):
    crop = Crop(8, 16, 40, 40, flip=False)  # 40 -> 40: no resampling, boxes must match the cropped masks
    out = augment(sample, crop, 40)
    inst = out["instance"]
    for k, d in enumerate(sample["det"]["instances"], start=1):
        ys, xs = np.nonzero(inst == k)
        boxes = [b["boxes"] for b in out["det"]["instances"] if b["class_name"] == d["class_name"]]
        if len(xs):
            expect = [xs.min() / 40, ys.min() / 40, (xs.max() + 1) / 40, (ys.max() + 1) / 40]
            assert any(np.allclose(b, expect, atol=1e-6) for b in boxes)


def test_crop_sampling_is_seeded_and_in_bounds():
    a = [random_resized_crop(60, 90, np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(1)
    for _ in range(200):
        c = random_resized_crop(60, 90, rng)
        assert c.top >= 0 and c.left >= 0 and c.top + c.height <= 60 and c.left + c.width <= 90
        assert 0.15 <= c.height * c.width / (60 * 90) <= 1.0
    assert center_crop(60, 90) == Crop(0, 15, 60, 60, False)
    with pytest.raises(ValueError, match="scale"):
        random_resized_crop(10, 10, rng, scale=(0.5, 2.0))


def test_recorded_crop_reproduces_the_sample(sample):
    t = AlignedTransform(size=32, target=None)
    first = t(sample, np.random.default_rng(7))
    again = t({**sample, "crop_settings": first["crop_settings"]})
    np.testing.assert_array_equal(first["rgb"], again["rgb"])
    assert Crop.from_row(first["crop_settings"]).as_row().tolist() == first["crop_settings"].tolist()


def test_normalisation(sample):
    out = to_tensors(augment(sample, center_crop(64, 64), 64), "fourm")
    rgb = torch.from_numpy(sample["rgb"]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(out["rgb"][0], (rgb[0] - IMAGENET_MEAN[0]) / 0.229)
    tok = to_tensors({"rgb": sample["rgb"]}, "tokenizer")["rgb"]
    assert tok.min() >= -1 and tok.max() <= 1
    d, valid = out["depth"][0], out["mask_valid"][0]
    core = d[valid]
    lo, hi = core.quantile(0.1), core.quantile(0.9)
    mid = core[(core >= lo) & (core <= hi)]
    assert abs(float(mid.mean())) < 1e-3 and abs(float(mid.std(unbiased=False)) - 1) < 1e-2
    assert out["semseg"].dtype == torch.long and out["normal"].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="target"):
        to_tensors(sample, "clip")


def test_clean_caption_and_errors(sample):
    assert clean_caption("  a  red\tcube\n on the floor ") == "a red cube on the floor"
    assert clean_caption([{"caption": "first  one"}, {"caption": "second"}]) == "first one"
    with pytest.raises(ValueError, match="no 'caption' field"):
        clean_caption({"text": "x"})
    with pytest.raises(ValueError, match="does not fit"):
        augment(sample, Crop(40, 40, 40, 40), 16)
    with pytest.raises(ValueError, match="no image-like"):
        augment({"caption": "x"}, Crop(0, 0, 1, 1), 16)


def test_edges_soft_maps_and_instance_masks_stay_in_unit_range():
    from open4m.data.transforms import instance_box_crop, unit_map

    edges = np.zeros((40, 40), np.uint8)
    edges[::4] = 255  # thin lines, every fourth row
    hed = np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40)
    mask = np.zeros((30, 50), np.uint8)
    mask[5:12, 20:41] = 255
    out = augment({"rgb": np.zeros((40, 40, 3), np.uint8), "canny_edge": edges, "hed_edge": hed, "sam_mask": mask},
                  center_crop(40, 40), 10)
    assert out["canny_edge"].shape == (10, 10) and 0 < out["canny_edge"].mean() < 255  # averaged, no line skipped
    assert out["sam_mask"] is mask  # an instance mask has its own frame: not cut with the photo
    tensors = to_tensors(out, "fourm")
    for name in ("canny_edge", "hed_edge"):
        x = tensors[name]
        assert x.dtype == torch.float32 and x.shape == (1, 10, 10) and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert float(tensors["hed_edge"].max()) > 0.8  # a float map is not truncated to integers
    assert instance_box_crop(mask).shape == (7, 21) and instance_box_crop(np.zeros((4, 4))).shape == (4, 4)
    assert unit_map(np.ones((3, 3, 1), bool)).shape == (1, 3, 3)
    with pytest.raises(ValueError, match="one-channel map"):
        unit_map(np.zeros((3, 3, 3), np.uint8))
