"""Alpha mixtures: the official recipes, the official YAML layout, alpha strings and errors."""

from __future__ import annotations

import pytest

from open4m import modalities
from open4m.data.masking import FOURM_7_MIXTURE, FOURM_21_MIXTURE, OFFICIAL_MIXTURES, AlphaComponent, AlphaMixture


def test_official_yaml_round_trip():
    config = {
        "sampling_weights": [1.0, 0.5],
        "alphas_mixture": {
            "rgb@224": {"input_alphas": [1000.0, 0.5], "target_alphas": [0.0, 0.0]},
            "caption": {"input_alphas": [0.0, 0.5], "target_alphas": [0.5, 0.5], "keep": ["random", "all"]},
        },
    }
    mixture = AlphaMixture.from_official(config)
    assert mixture.weights == (1.0, 0.5)
    assert mixture.components[1].keep_scheme("caption") == "all"
    assert mixture.components[0].input_alphas == {"rgb@224": 1000.0, "caption": 0.0}
    with pytest.raises(ValueError, match="same number of alphas"):
        AlphaMixture.from_official({"caption": {"input_alphas": [1.0], "target_alphas": [1.0, 2.0]}})


def test_official_mixture_facts():
    assert set(OFFICIAL_MIXTURES) == {"4m-7", "4m-7-capbias", "4m-21"}
    assert set(FOURM_7_MIXTURE.modalities) == set(modalities.FOURM_7)
    assert set(FOURM_21_MIXTURE.modalities) == set(modalities.FOURM_21)
    names = [c.name for c in FOURM_21_MIXTURE.components]
    assert names == ["all-to-all-a0.01", "all-to-all-a0.1", "all-to-all-a1", "all-to-all-a10",
                     "rgb-to-all", "caption-biased", "t5-biased"]
    assert FOURM_21_MIXTURE.weights == (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5)
    cap = FOURM_21_MIXTURE.components[5]
    assert cap.input_alphas["caption"] == 5.0 and cap.keep_scheme("caption") == "all"
    assert cap.target_alphas["caption"] == 0.0 and cap.input_alphas["tok_rgb@224"] == 0.05
    assert all(c.keep_scheme("color_palette") == "binary" for c in FOURM_21_MIXTURE.components)


def test_alpha_strings_and_errors():
    mix = AlphaMixture.single(["caption", "det"], "1.0-0.5", "0.1")
    comp = mix.components[0]
    assert comp.input_alphas == {"caption": 1.0, "det": 0.5} and comp.target_alphas == {"caption": 0.1, "det": 0.1}
    with pytest.raises(ValueError, match="one or one each"):
        AlphaMixture.single(["caption", "det"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="alphas must be >= 0"):
        AlphaComponent("bad", {"caption": -1.0}, {})
    with pytest.raises(ValueError, match="keep scheme"):
        AlphaComponent("bad", {"caption": 1.0}, {}, {"caption": "most"})
