"""keypoints and person_mask: MediaPipe Pose on real photos (skimage's astronaut, matplotlib's Grace Hopper)."""

from __future__ import annotations

import importlib.util
import socket
import urllib.request

import numpy as np
import pytest

from open4m.data import codecs
from open4m.data.labelers import LABELERS, label_folder, read_provenance
from open4m.data.transforms import Crop, augment
from open4m.errors import ConfigError
from open4m.tokenizers.sequences import BODY_KEYPOINT_NAMES, CODECS

pytest.importorskip("mediapipe", reason="keypoints/person_mask run MediaPipe Pose (the labelers extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the labelers extra) ships the sample photos")

from open4m.data.labelers.pose import PersonMask, PoseKeypoints  # noqa: E402 - after the skips

NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = (BODY_KEYPOINT_NAMES.index(n) for n in ("nose", "left_shoulder", "right_shoulder"))


def grace_hopper() -> np.ndarray:
    cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib ships grace_hopper.jpg")
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    """Real photos at their own sizes: two portraits, the two side by side, two without anybody."""
    from PIL import Image

    astronaut, hopper = skimage_data.astronaut(), grace_hopper()
    pair = np.concatenate([astronaut, np.asarray(Image.fromarray(hopper).resize((512, 512)))], axis=1)
    return {"astronaut": astronaut, "hopper": hopper, "pair": pair,
            "coffee": skimage_data.coffee(), "chelsea": skimage_data.chelsea()}


@pytest.fixture(scope="module")
def keypoints() -> PoseKeypoints:
    return PoseKeypoints()


@pytest.fixture(scope="module")
def person_mask() -> PersonMask:
    return PersonMask()


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_a_portrait_has_one_person_facing_the_camera(keypoints, images):
    for name, nose_at in (("astronaut", (0.435, 0.25)), ("hopper", (0.527, 0.375))):
        (person,) = keypoints({"rgb": images[name]})
        box, points = person["box"], person["keypoints"]
        assert len(points) == 33 and all(0 <= v <= 1 for p in points for v in p)
        assert points[NOSE][2] > 0.9 and np.hypot(points[NOSE][0] - nose_at[0], points[NOSE][1] - nose_at[1]) < 0.05
        assert _inside(points[NOSE], box) and box[3] == 1.0  # the body leaves the frame at the bottom
        # facing the camera: the person's left shoulder is on the image's right
        assert points[LEFT_SHOULDER][0] > points[NOSE][0] > points[RIGHT_SHOULDER][0]
        assert (box[2] - box[0]) * (box[3] - box[1]) > 0.4


def test_two_people_side_by_side_are_both_found(keypoints, images):
    people = keypoints({"rgb": images["pair"]})
    assert len(people) == 2
    right, left = people  # largest box first: Grace Hopper fills her half
    assert right["box"][0] >= 0.45 and left["box"][2] <= 0.55
    assert right["keypoints"][NOSE][0] > 0.5 > left["keypoints"][NOSE][0]
    text = CODECS["keypoints"].to_text(people)
    assert text.split().count("person") == 2


def test_photos_without_people_give_none(keypoints, person_mask, images):
    for name in ("coffee", "chelsea"):
        assert keypoints({"rgb": images[name]}) == []
        assert CODECS["keypoints"].to_text([]) == "none"
        mask = person_mask({"rgb": images[name]})
        assert mask.shape == images[name].shape[:2] and mask.dtype == np.float32 and not mask.any()


def test_person_mask_covers_the_person_only(person_mask, keypoints, images):
    image = images["astronaut"]
    mask = person_mask({"rgb": image})
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32 and 0 <= mask.min() and mask.max() <= 1
    h, w = mask.shape
    nose = keypoints({"rgb": image})[0]["keypoints"][NOSE]
    assert mask[int(nose[1] * h), int(nose[0] * w)] > 0.9
    assert mask[: h // 3, int(0.85 * w):].mean() < 0.05  # the flag and rocket at the top right
    assert 0.3 < (mask > 0.5).mean() < 0.6
    both = person_mask({"rgb": images["pair"]})
    assert (both[:, :512] > 0.5).mean() > 0.2 and (both[:, 512:] > 0.5).mean() > 0.3  # one mask for everybody


def test_runs_offline_on_the_bundled_model(monkeypatch, images):
    """model_complexity=1 ships in the wheel: MediaPipe must not reach for its download URL."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    fresh = PoseKeypoints()
    try:
        assert len(fresh({"rgb": images["astronaut"]})) == 1
    finally:
        fresh.close()


def test_label_folder_records_the_models_and_resumes(tmp_path, images, keypoints, person_mask):
    (tmp_path / "rgb").mkdir()
    for name in ("astronaut", "chelsea"):
        (tmp_path / "rgb" / f"{name}.jpg").write_bytes(codecs.encode(images[name], ".jpg", "rgb"))
    assert label_folder(tmp_path, keypoints, batch_size=2, progress=False)["labeled"] == 2
    assert label_folder(tmp_path, person_mask, progress=False)["labeled"] == 2
    stored = codecs.decode((tmp_path / "keypoints" / "astronaut.json").read_bytes(), ".json", "keypoints")
    assert stored == keypoints({"rgb": codecs.decode((tmp_path / "rgb" / "astronaut.jpg").read_bytes(), ".jpg", "rgb")})
    assert codecs.decode((tmp_path / "keypoints" / "chelsea.json").read_bytes(), ".json", "keypoints") == []
    mask = codecs.decode((tmp_path / "person_mask" / "astronaut.png").read_bytes(), ".png", "person_mask")
    assert mask.dtype == np.float32 and mask.shape == (512, 512) and 0.3 < (mask > 0.5).mean() < 0.6
    records = read_provenance(tmp_path)
    for name in ("keypoints", "person_mask"):
        model = records[name]["model"]
        assert set(model["weights"]) == {"pose_detection.tflite", "pose_landmark_full.tflite"}
        assert all(len(h) == 64 for h in model["weights"].values()) and model["package"] == "mediapipe==0.10.14"
        assert records[name]["options"]["model_complexity"] == 1 and records[name]["count"] == 2
    assert label_folder(tmp_path, keypoints, progress=False) == {"skipped": 2}
    assert label_folder(tmp_path, keypoints, overwrite=True, progress=False)["labeled"] == 2


def test_options_and_missing_extra(monkeypatch):
    with pytest.raises(ConfigError, match="max_persons"):
        PoseKeypoints(max_persons=0)
    with pytest.raises(ConfigError, match="mask_threshold"):
        PersonMask(mask_threshold=1.0)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mediapipe" else real(name, *a))
    for labeler in ("keypoints", "person_mask"):
        with pytest.raises(ConfigError) as err:
            LABELERS[labeler]()
        assert "\n" not in str(err.value) and "pip install 'open4m[labelers]'" in str(err.value)
        assert "mediapipe==0.10.14" in str(err.value)


def test_a_crop_and_flip_carry_the_keypoints_along():
    person = {"box": [0.25, 0.0, 0.75, 1.0],
              "keypoints": [[0.5, 0.1, 1.0]] + [[0.3 if "left" in n else 0.7, 0.5, 0.9] for n in BODY_KEYPOINT_NAMES[1:]]}
    person["keypoints"][-1] = [0.9, 0.95, 0.8]  # right_foot_index, outside the crop below
    sample = {"rgb": np.zeros((100, 200, 3), np.uint8), "keypoints": [person]}
    out = augment(sample, Crop(0, 50, 80, 100, flip=True), 40)["keypoints"]
    (p,) = out
    assert p["box"] == pytest.approx([0.0, 0.0, 1.0, 1.0])
    assert p["keypoints"][NOSE] == pytest.approx([0.5, 0.125, 1.0])
    # the left shoulder at x = 0.3 of 200 px is 10 px into the 100 px crop (0.1), mirrored to 0.9; a mirrored
    # left shoulder looks like a right one, so there it is labelled right_shoulder (and the right one left)
    assert p["keypoints"][RIGHT_SHOULDER] == pytest.approx([0.9, 0.625, 0.9])
    assert p["keypoints"][LEFT_SHOULDER] == pytest.approx([0.1, 0.625, 0.9])
    assert p["keypoints"][BODY_KEYPOINT_NAMES.index("left_foot_index")][2] == 0.0  # left the crop: hidden
    assert augment(sample, Crop(0, 160, 40, 40), 40)["keypoints"] == []  # the person is not in this crop
