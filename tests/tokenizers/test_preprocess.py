"""Decoded outputs as images: feature maps with 1 or 3 channels are shown, others are refused with advice."""

import numpy as np
import pytest
import torch

from open4m.tokenizers.preprocess import Preprocessor


def test_feature_maps_with_one_or_three_channels_become_images():
    pre = Preprocessor(input="features")
    one = pre.to_pil(torch.linspace(-1, 1, 2 * 16).reshape(2, 1, 4, 4))
    assert [im.mode for im in one] == ["L", "L"]
    assert np.asarray(one[0]).min() == 0 and np.asarray(one[0]).max() == 255  # each image stretched on its own
    three = pre.to_pil(torch.randn(1, 3, 4, 4))
    assert three[0].mode == "RGB" and three[0].size == (4, 4)
    with pytest.raises(ValueError, match="8 channels are not images; use to_numpy"):
        pre.to_pil(torch.randn(1, 8, 4, 4))


def test_one_channel_images_take_grey_maps_and_batches_of_them():
    """Edges / masks: (H, W), (H, W, 1) and a batch (B, H, W) are one-channel images, never (H=1, W, C=W)."""
    pre = Preprocessor(input="image", mean=[0.5], std=[0.5])
    edge = np.zeros((8, 8), np.uint8)
    edge[3] = 255
    single, batch = pre.to_model(edge), pre.to_model(np.stack([edge, edge, edge]))
    assert single.shape == (1, 1, 8, 8) and batch.shape == (3, 1, 8, 8)
    assert float(single.min()) == -1.0 and float(single.max()) == 1.0  # 0 = no edge -> -1
    assert pre.to_model(edge[..., None]).shape == (1, 1, 8, 8)
    mask = Preprocessor(input="image", mean=[0.0], std=[1.0]).to_model(edge > 0)  # a bool mask stays in [0, 1]
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) == {0.0, 1.0}


def test_feature_tokenizers_refuse_image_pixels_with_the_fix():
    """A depth PNG given to the world model's depth tokenizer (feature maps) failed deep in the encoder
    ("expects input (B, 1, H, W), got (64, 64)"); image pixels are never feature maps, so it is said so."""
    pre = Preprocessor(input="features")
    for pixels in (np.zeros((8, 8), np.uint16), np.zeros((8, 8, 3), np.uint8)):
        with pytest.raises(ValueError, match=r"takes float feature maps \(C, H, W\) in its model's form, not image "
                                             r"pixels \(got a uint\d+ .* array, as an image file reads\); give it its "
                                             r"input as a \.npy array"):
            pre.to_model(pixels)
    assert pre.to_model(np.zeros((3, 8, 8), np.float32)).shape == (1, 3, 8, 8)


def test_read_only_arrays_and_pil_images_convert_without_a_torch_warning():
    """`np.asarray(pil_image)` is read-only: `torch.from_numpy` on it printed PyTorch's "not writable" UserWarning
    (with a source line) into `open4m generate --input tok_canny_edge=edges.png`."""
    import warnings

    from PIL import Image

    pre = Preprocessor(input="image", mean=[0.5], std=[0.5])
    edge = np.zeros((8, 8), np.uint8)
    edge.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pre.to_model(edge).shape == (1, 1, 8, 8)
        assert pre.to_model(Image.fromarray(np.zeros((8, 8), np.uint8))).shape == (1, 1, 8, 8)
    assert not edge.flags.writeable  # the caller's array is left as it was
