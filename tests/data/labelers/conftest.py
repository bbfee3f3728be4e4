"""Real photos for the labeler tests: scikit-image's astronaut, chelsea and coffee, made small.

The network labelers are checked on real photos (a HED map must follow real edges), kept to 96 px
on the long side so each test takes a few seconds on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from open4m.data import codecs

PHOTO_NAMES = ("astronaut", "chelsea", "coffee")


def small_photo(name: str, side: int = 96) -> np.ndarray:
    """A scikit-image sample photo as (H, W, 3) uint8, its long side `side` pixels."""
    import cv2

    data = pytest.importorskip("skimage.data", reason="scikit-image (the labelers extra) ships the sample photos")
    image = getattr(data, name)()
    scale = side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """name -> small real photo."""
    return {name: small_photo(name) for name in PHOTO_NAMES}


@pytest.fixture()
def photo_dir(tmp_path: Path, photos: dict[str, np.ndarray]) -> Path:
    """A plain folder of the user's photos: two JPEGs at the top, one PNG in a subfolder (key trip/chelsea)."""
    (tmp_path / "trip").mkdir()
    (tmp_path / "astronaut.jpg").write_bytes(codecs.encode(photos["astronaut"], ".jpg", "rgb"))
    (tmp_path / "coffee.jpg").write_bytes(codecs.encode(photos["coffee"], ".jpg", "rgb"))
    (tmp_path / "trip" / "chelsea.png").write_bytes(codecs.encode(photos["chelsea"], ".png", "rgb"))
    return tmp_path
