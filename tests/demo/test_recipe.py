import json

import numpy as np
import pytest

from open4m.cli import main
from open4m.data.synthetic import generate_sample, seed_for
from open4m.demo import MissingModelError, WorldModel
from open4m.demo.bundle import bundle_missing
from open4m.demo.recipe import load_recipe


def test_recipe_sections_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {}\nmodel: {}\n")
    with pytest.raises(ValueError, match="unknown config key 'model'"):
        load_recipe(bad)
    with pytest.raises(FileNotFoundError, match="--config"):
        load_recipe(tmp_path / "nope.yaml")


def test_shipped_recipe_is_complete():
    recipe = load_recipe()
    assert recipe.world.image_size % recipe.world.patch_size == 0


def test_missing_bundle_says_how_to_train_one(tmp_path, capsys):
    with pytest.raises(MissingModelError, match="open4m demo --train"):
        WorldModel.load(tmp_path)
    assert main(["demo", "--model", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "open4m demo --train" in err and "Traceback" not in err


def test_recipe_writes_a_complete_bundle(tiny_bundle):
    assert bundle_missing(tiny_bundle) == []
    info = json.loads((tiny_bundle / "world.json").read_text())
    assert info["train_scenes"] == 24 and set(info["timings"]) == {"render_s", "tokenizers_s", "fourm_s"}
    card = (tiny_bundle / "README.md").read_text()  # written from world.json: no eval yet, so no metrics
    assert "24 scenes of the `train` split" in card and "## Metrics" not in card


def test_bundle_predicts_every_image_modality(tiny_bundle):
    model = WorldModel.load(tiny_bundle)
    rgb = np.stack([generate_sample(seed_for("val", i), 32)["rgb"] for i in range(2)])
    cond = {model.spec.rgb_pixels: model.rgb_pixels(rgb)}
    depth = model.predict_image("depth", cond, steps=2)
    assert depth.shape == (2, 32, 32) and (depth > 0).all()
    normal = model.predict_image("normal", cond, steps=2)
    np.testing.assert_allclose(np.linalg.norm(normal, axis=-1), 1.0, atol=1e-4)
    assert model.predict_image("semseg", cond).dtype == np.uint8
    palette = model.predict_text("color_palette", cond)
    assert len(palette) == 2 and all(isinstance(t, str) for t in palette)
    generated = model.rgb_from(["a room with one object."] * 2, depth, steps=2)
    assert generated.shape == (2, 32, 32, 3) and generated.dtype == np.uint8
    with pytest.raises(ValueError, match="needs captions, depth or both"):
        model.rgb_from()
