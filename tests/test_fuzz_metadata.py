"""Fuzzing the checkpoint-metadata parsers with hypothesis: a safetensors header's metadata (any strings,
from a file anyone may hand us) becomes a config or one of our own errors (`Open4mError`, one line),
never another exception. Covers FourM metadata (release layout + open4m's modality descriptions), the
tokenizer metadata convention, the fine-tuned encoder's JSON and the literal parser they share, on
dicts in memory and on real files. Fast: modest example counts, no deadline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from open4m import modalities
from open4m.errors import Open4mError
from open4m.model.checkpoint import MODALITIES_KEY, config_of, load_config
from open4m.model.config import FourMConfig, parse_literal
from open4m.model.encoder import _config_from_json
from open4m.tokenizers.config import DiVAEConfig, VQVAEConfig, config_from_dict, parse_official_value

from fuzzing import ours_or_value

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

# Values the official writers put in metadata (Python literals) and their near misses.
LITERALS = ["True", "False", "None", "null", "0", "-1", "64", "1e-06", "nan", "inf", "-inf", "1e400", "[]", "{}",
            "['rgb@224', 'caption']", "['rgb@224'", "[[[[[[[[[[", "()", "(1, 2)", "{'a': 1}", "GELU", "SiLU", "",
            " ", "x" * 300, "!!python/object:os.system", "&a [*a]", "2001-13-45", "0x1F", "1_000", "---", "'",
            "\x00", "é", '{"name": 1}', "[{}]", "7" * 400]
values = st.one_of(st.sampled_from(LITERALS), st.text(max_size=40))
FOURM_KEYS = [f.name for f in dataclasses.fields(FourMConfig)]
TOKENIZER_KEYS = sorted({f.name for f in dataclasses.fields(DiVAEConfig)} | {f.name for f in dataclasses.fields(VQVAEConfig)}
                        | {"tokenizer_class", "format"})
fourm_metadata = st.dictionaries(st.one_of(st.sampled_from(FOURM_KEYS + [MODALITIES_KEY]), st.text(max_size=10)),
                                 values, max_size=12)
tokenizer_metadata = st.dictionaries(st.one_of(st.sampled_from(TOKENIZER_KEYS), st.text(max_size=10)), values,
                                     max_size=12)
# What open4m_modalities holds: a JSON list of modality specs (fuzzed in shape and values).
SPEC_KEYS = ["name", "kind", "vocab_size", "max_tokens", "num_channels", "path", "image_size", "patch_size",
             "pixel_mean", "pixel_std", "tokenizer"]
spec_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=True) | st.text(max_size=8)
    | st.sampled_from(["fuzz_mod", "image", "sequence", "pixels", "vector", "rgb@224"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(SPEC_KEYS), inner, max_size=8),
    max_leaves=20).map(json.dumps)


@pytest.fixture
def registry():
    """The modality registry is restored after each example (a fuzzed checkpoint may register modalities)."""
    saved = dict(modalities._REGISTRY)
    yield
    modalities._REGISTRY.clear()
    modalities._REGISTRY.update(saved)


@FUZZ
@given(text=values)
def test_literal_parsers_take_any_string(text):
    """The shared value parsers never raise: a value, or the raw string back."""
    parse_literal(text)
    parse_official_value(text)


@FUZZ
@given(metadata=fourm_metadata, specs=st.none() | spec_json | st.text(max_size=30))
def test_fourm_metadata_becomes_a_config_or_our_error(registry, metadata, specs):
    if specs is not None:
        metadata = {**metadata, MODALITIES_KEY: specs}
    saved = dict(modalities._REGISTRY)
    try:
        result = ours_or_value(lambda: config_of(Path("fuzzed.safetensors"), None, metadata))
        assert isinstance(result, (FourMConfig, Open4mError))
    finally:
        modalities._REGISTRY.clear()
        modalities._REGISTRY.update(saved)


@FUZZ
@given(config=st.dictionaries(st.sampled_from(FOURM_KEYS), st.one_of(values.map(parse_literal), st.integers()),
                              max_size=12))
def test_fourm_config_json_becomes_a_config_or_our_error(config):
    """config.json beside the weights (already parsed JSON values of any type)."""
    ours_or_value(lambda: FourMConfig.from_dict(config))


@FUZZ
@given(metadata=tokenizer_metadata)
def test_tokenizer_metadata_becomes_a_config_or_our_error(metadata):
    ours_or_value(lambda: config_from_dict(metadata))


@FUZZ
@given(text=st.one_of(st.text(max_size=40), st.dictionaries(st.text(max_size=8), values.map(parse_literal),
                                                               max_size=6).map(json.dumps),
                      st.sampled_from(['{"dim": "a"}', "[]", "null", '{"num_classes": -1}', "1"])))
def test_encoder_metadata_becomes_a_config_or_our_error(text):
    ours_or_value(lambda: _config_from_json(text, Path("fuzzed.safetensors")))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadata=fourm_metadata)
def test_a_file_with_any_metadata_loads_a_config_or_says_why(registry, tmp_path_factory, metadata):
    """The same through a real safetensors file (header written by safetensors itself)."""
    from open4m.tokenizers.checkpoint import read_checkpoint

    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "model.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata=metadata)
    saved = dict(modalities._REGISTRY)
    try:
        ours_or_value(lambda: load_config(path))
        ours_or_value(lambda: config_from_dict(read_checkpoint(path)[1]))
    finally:
        modalities._REGISTRY.clear()
        modalities._REGISTRY.update(saved)


@pytest.mark.parametrize("build", [
    lambda big: config_from_dict({"threshold_ema_dead_code": str(big)}),  # tokenizer metadata: strings
    lambda big: FourMConfig.from_dict({"mlp_ratio": big}),  # a float field given an integer beyond float's range
    lambda big: _config_from_json(json.dumps({"drop_path_rate": big}), Path("fuzzed.safetensors")),
])
def test_an_integer_too_large_for_a_float_field_is_our_error(build):
    """Found by the fuzzer ("7" * 400 as a float field): `float()` and `math.isfinite` raise OverflowError."""
    err = ours_or_value(lambda: build(int("7" * 400)))
    assert isinstance(err, Open4mError) and "7777" in str(err)
