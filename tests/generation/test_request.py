"""`open4m.generation.request`: the functions behind both `open4m generate` and the `open4m serve` page."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from open4m.errors import ConfigError, DataError, NotFound
from open4m.generation.request import build_request, condition_value, schedule_options


@pytest.fixture(scope="module")
def world_model():
    from open4m.model import FourM
    from open4m.sources.world import SHIPPED, load_tokenizers

    load_tokenizers(SHIPPED)  # registers its modalities (another world model of the session may have other ones)
    return FourM.from_pretrained(SHIPPED)


def test_short_names_resolve_to_the_models_modalities(world_model):
    request = build_request(world_model, {"rgb": "scene.png", "world_caption": "a cube"}, ["depth", " normal "],
                            seed=3, steps="4-2", temps=None, cfg=2.0)
    assert request.inputs == {"rgb@64": "scene.png", "world_caption": "a cube"}
    assert request.targets == ["tok_depth@64", "tok_normal@64"]
    assert request.spec == "rgb@64,world_caption->tok_depth@64->tok_normal@64"
    assert request.options == {"steps": "4-2", "cfg": 2.0} and request.seed == 3


def test_bad_requests(world_model):
    with pytest.raises(ConfigError, match="no target"):
        build_request(world_model, {"rgb": "x.png"}, ["", " "])
    with pytest.raises(ConfigError, match="both given and generated"):
        build_request(world_model, {"tok_depth@64": "d.png"}, ["depth"])
    with pytest.raises(ConfigError, match="whole number"):
        build_request(world_model, {"rgb": "x.png"}, ["depth"], seed=1.5)
    with pytest.raises(TypeError, match="not decoding options"):
        schedule_options(stepz=3)


def test_condition_values(world_model, tmp_path):
    photo = tmp_path / "scene.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(photo)
    assert isinstance(condition_value("rgb@64", str(photo), world_model, "--input rgb@64="), Image.Image)
    depth = condition_value("tok_depth@64", str(photo), world_model, "--input tok_depth@64=")
    assert isinstance(depth, np.ndarray) and depth.shape == (64, 64, 3)
    np.save(tmp_path / "d.npy", np.zeros((1, 64, 64), np.float32))
    assert condition_value("tok_depth@64", tmp_path / "d.npy", world_model, "x").shape == (1, 64, 64)
    ids = torch.zeros(1, 64, dtype=torch.long)
    assert condition_value("tok_depth@64", ids, world_model, "x") is ids  # token ids pass as they are
    assert condition_value("world_caption", "a red cube", world_model, "x") == "a red cube"
    with pytest.raises(NotFound, match="--input rgb@64=missing.png: no such file"):
        condition_value("rgb@64", "missing.png", world_model, "--input rgb@64=")
    (tmp_path / "fake.png").write_text("text")
    with pytest.raises(DataError, match="not an image file"):
        condition_value("rgb@64", str(tmp_path / "fake.png"), world_model, "--input rgb@64=")


def test_a_request_runs_on_a_pipeline(world_model):
    from open4m.generation.pipeline import Pipeline

    scene = np.full((64, 64, 3), 128, np.uint8)
    request = build_request(world_model, {"rgb": scene}, ["world_det"], temps=0.0)
    out = request.run(Pipeline(request.spec, world_model, **request.options))
    assert list(out.texts) == ["world_det"] and "world_det" in out.parsed  # the world's boxes parse like det's
