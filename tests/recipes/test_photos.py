"""The bundled example photos (scikit-image, scikit-learn, matplotlib) written as an aligned folder."""

import numpy as np
import pytest
from PIL import Image

from open4m.errors import ConfigError
from open4m.recipes.photos import MAX_SIDE, PHOTOS, sample_photos

pytest.importorskip("skimage", reason="the example photos need scikit-image (pip install 'open4m[labelers]')")
pytest.importorskip("sklearn", reason="the example photos need scikit-learn (pip install 'open4m[labelers]')")


def test_writes_every_photo_with_its_caption(tmp_path):
    counts = sample_photos(tmp_path / "photos")
    assert counts == {"train": 12, "val": 4} and sum(counts.values()) == len(PHOTOS)
    for photo in PHOTOS:
        root = tmp_path / "photos" / photo.split
        im = Image.open(root / "rgb" / f"{photo.name}.jpg")
        assert max(im.size) <= MAX_SIDE and min(im.size) >= 100
        caption = (root / "caption" / f"{photo.name}.txt").read_text().strip()
        assert len(caption.split()) >= 2, photo.name
    # grey photos stay grey (a user's folder holds them too); colour ones are RGB
    assert Image.open(tmp_path / "photos/train/rgb/camera.jpg").mode == "L"
    assert Image.open(tmp_path / "photos/train/rgb/astronaut.jpg").mode == "RGB"
    assert (tmp_path / "photos/train/caption/chelsea.txt").read_text().strip() == "Chelsea the cat."
    assert np.asarray(Image.open(tmp_path / "photos/val/rgb/flower.jpg")).std() > 20


def test_never_writes_into_a_folder_with_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds files"):
        sample_photos(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "train").exists()
    sample_photos(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "train/rgb/coffee.jpg").is_file()
