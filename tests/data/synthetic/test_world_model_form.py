"""The world in model form (`open4m.data.synthetic.world`): registry entries, conversions, sequence texts."""

import re

import numpy as np
import pytest

from open4m import modalities
from open4m.data.synthetic import generate_sample, world
from open4m.data.synthetic.world import IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldSpec


@pytest.fixture(scope="module")
def sample():
    return generate_sample(3, 32)


@pytest.mark.parametrize("base", IMAGE_MODALITIES)
def test_model_form_round_trip(sample, base):
    x = world.to_model_form(base, sample[base])
    if base == "semseg":
        decoded = np.eye(9, dtype=np.float32)[x.numpy()].transpose(2, 0, 1)[None]  # one-hot "logits"
    else:
        decoded = x[None].numpy()
    import torch

    back = world.from_model_form(base, torch.from_numpy(decoded))[0]
    if base == "depth":
        valid = sample["depth"] > 0
        np.testing.assert_allclose(back[valid], sample["depth"][valid], rtol=1e-5)
    elif base == "normal":
        valid = np.linalg.norm(sample["normal"], axis=-1) > 0.5
        np.testing.assert_allclose(back[valid], sample["normal"][valid], atol=1e-3)
    else:
        np.testing.assert_array_equal(back, sample[base])


def test_unknown_modality_is_a_clear_error(sample):
    with pytest.raises(ValueError, match="not an image modality"):
        world.to_model_form("albedo", sample["rgb"])
    with pytest.raises(ValueError, match="not a sequence modality"):
        world.sequence_text("poses", sample)


@pytest.mark.parametrize("key", ["det", "color_palette", "metadata"])
def test_sequence_text_parses_back(sample, key):
    value = world.parse_text(key, world.sequence_text(key, sample))
    if key == "det":
        truth = sample["det"]["instances"]
        assert sorted(b.class_name for b in value) == sorted(i["class_name"] for i in truth)
    elif key == "color_palette":
        assert [list(c) for c in value] == world.palette_of(sample)
    else:
        assert set(value) == set(world.METADATA_KEYS)
        assert abs(value["brightness"] - sample["metadata"]["brightness"]) < 255 / 49


def test_register_is_idempotent_and_uses_the_demo_grid():
    spec = WorldSpec(32, 8, {b: 16 for b in IMAGE_MODALITIES}, 4400)
    names = world.register_modalities(spec)
    assert world.register_modalities(spec) == names
    assert modalities.get(spec.tok("depth")).grid_size() == (4, 4)
    assert modalities.get(SEQUENCE_MODALITIES["caption"]).vocab_size == 4400
    assert WorldSpec.from_dict(spec.to_dict()) == spec


def test_rgb_input_patches_can_be_finer_than_the_token_grids():
    spec = WorldSpec(32, 8, {b: 16 for b in IMAGE_MODALITIES}, 4400, rgb_patch_size=4)
    world.register_modalities(spec)
    assert modalities.get(spec.rgb_pixels).grid_size() == (8, 8)
    assert modalities.get(spec.tok("semseg")).grid_size() == (4, 4)
    assert WorldSpec.from_dict(spec.to_dict()) == spec


def test_a_bundle_spec_written_before_rgb_patch_size_reads_as_the_token_patch():
    old = {"image_size": 32, "patch_size": 8, "codebook_sizes": {b: 16 for b in IMAGE_MODALITIES},
           "text_vocab_size": 4400}
    spec = WorldSpec.from_dict(old)
    assert spec.rgb_patch_size == 8 and spec.caption_order == "random"  # the order every world began with
    world.register_modalities(spec)
    assert modalities.get(spec.rgb_pixels).grid_size() == (4, 4)


def test_the_caption_order_is_part_of_the_spec_and_checked():
    spec = WorldSpec(32, 8, {b: 16 for b in IMAGE_MODALITIES}, 4400, caption_order="left_to_right")
    assert WorldSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["caption_order"] == "left_to_right"
    with pytest.raises(ValueError, match="unknown caption order 'sideways'"):
        WorldSpec(32, 8, {b: 16 for b in IMAGE_MODALITIES}, 4400, caption_order="sideways")


def test_the_caption_rgb_chain_is_part_of_the_spec_and_checked():
    sizes = {b: 16 for b in IMAGE_MODALITIES}
    spec = WorldSpec(32, 8, sizes, 4400, caption_rgb_chain=["det", "semseg"])
    assert spec.caption_rgb_chain == ("det", "semseg") and WorldSpec.from_dict(spec.to_dict()) == spec
    assert "caption_rgb_chain" not in WorldSpec(32, 8, sizes, 4400).to_dict()  # as bundles before it read
    for chain, error in ((["rgb"], "'rgb' cannot be drawn on the way from a caption to RGB; choose each at most "
                                   "once from depth, normal, semseg, canny_edge, det, color_palette, metadata"),
                         (["det", "det"], "a key is named twice"), ("det", "give a list of world keys")):
        with pytest.raises(ValueError, match=re.escape(error)):
            WorldSpec(32, 8, sizes, 4400, caption_rgb_chain=chain)


def test_caption_rgb_guidance_is_part_of_the_spec_and_weights_only_its_conditions():
    sizes = {b: 16 for b in IMAGE_MODALITIES}
    spec = WorldSpec(32, 8, sizes, 4400, caption_rgb_chain=["det"], caption_rgb_guidance={"det": 2, "caption": 0.5})
    assert spec.caption_rgb_guidance == {"det": 2.0, "caption": 0.5} and WorldSpec.from_dict(spec.to_dict()) == spec
    assert "caption_rgb_guidance" not in WorldSpec(32, 8, sizes, 4400).to_dict()  # as bundles before it read
    for weights, error in (({"semseg": 2.0}, "'semseg' is no condition of caption -> RGB; weight one of caption, det"),
                           ({"det": -1.0}, "{'det': -1.0} must be numbers >= 0"),
                           ({"det": "2"}, "must be numbers >= 0"), ([2.0], "give a mapping of condition")):
        with pytest.raises(ValueError, match=re.escape(error)):
            WorldSpec(32, 8, sizes, 4400, caption_rgb_chain=["det"], caption_rgb_guidance=weights)
