"""Pixels read from rgb/ images next to token files follow the pixel modality's own normalisation."""

import numpy as np
import torch

from open4m import modalities
from open4m.data import codecs
from open4m.modalities import Kind, Modality
from open4m.sources.tokens import TokenFolder


def test_pixels_use_the_modality_mean_and_std(tmp_path):
    (tmp_path / "rgb").mkdir()
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, 24:] = 255
    (tmp_path / "rgb" / "a.png").write_bytes(codecs.encode(image, ".png", "rgb"))
    symmetric = Modality("rgb@16", Kind.PIXELS, image_size=16, patch_size=8, num_channels=3, encoder=True,
                         path="rgb", pixel_mean=(0.5,) * 3, pixel_std=(0.5,) * 3)
    modalities.register(symmetric)
    try:
        x = TokenFolder(tmp_path, ["rgb@16"])[0]["rgb@16"]
    finally:
        modalities.unregister("rgb@16")
    assert x.shape == (3, 16, 16) and float(x.min()) == -1.0 and float(x.max()) == 1.0  # [-1, 1], not ImageNet's
    imagenet = TokenFolder(tmp_path, ["rgb@224"])[0]["rgb@224"]
    assert torch.isclose(imagenet.min(), torch.tensor(-0.485 / 0.229), atol=1e-4)
