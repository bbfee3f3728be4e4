"""int8 inference: torchao weight-only (`int8`, the open4m[int8] extra) and torch's dynamic int8 (`int8-dynamic`)."""

from __future__ import annotations

import builtins
import copy

import numpy as np
import pytest
import torch

from open4m.errors import ConfigError
from open4m.generation import Sampler, build_schedule
from open4m.generation.pipeline import parse_dtype, pipeline
from open4m.model import FourM, preset
from open4m.model.quantize import INT8_MODES, is_quantized, quantize_int8
from open4m.sources.world import SHIPPED, bundle_missing


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return FourM(preset("tiny-swiglu_nobias", domains_in=["rgb@224", "tok_depth@224", "caption"],
                        domains_out=["tok_depth@224", "caption"], dim=64, encoder_depth=2, decoder_depth=2,
                        num_heads=2)).eval()


def _mode(mode):
    if mode == "int8":
        pytest.importorskip("torchao", reason="dtype int8 needs the open4m[int8] extra (torchao)")
    return mode


@pytest.mark.parametrize("mode", INT8_MODES)
def test_quantised_logits_stay_close_to_float32(tiny, mode):
    quantized = quantize_int8(copy.deepcopy(tiny), _mode(mode))
    assert is_quantized(quantized) and not is_quantized(tiny)
    rgb = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    schedule = build_schedule("rgb@224->tok_depth@224", steps=1, temps=0.0)
    with torch.inference_mode():
        a = Sampler(tiny).generate({"rgb@224": rgb}, schedule)["tok_depth@224"]["tensor"]
        b = Sampler(quantized).generate({"rgb@224": rgb}, schedule)["tok_depth@224"]["tensor"]
        caption = build_schedule("rgb@224->caption", tokens=9, temps=0.0)
        assert Sampler(quantized).generate({"rgb@224": rgb}, caption)["caption"]["tensor"].shape[0] == 1
    # one greedy step on a random model: nearly every token is the float32 one (int8 rounding flips near-ties)
    assert (a == b).float().mean() > 0.8


def test_weight_only_keeps_an_int8_copy_of_each_linear(tiny):
    _mode("int8")
    quantized = quantize_int8(copy.deepcopy(tiny), "int8")
    qkv = quantized.encoder[0].attn.qkv
    assert type(qkv) is torch.nn.Linear and qkv.weight.qdata.dtype == torch.int8
    # a tied output head is quantised on its own; the embedding table it shared keeps its floats
    head = quantized.decoder_embeddings["caption"]
    assert head.token_emb.weight.dtype == torch.float32 and type(head.token_emb.weight).__name__ == "Parameter"


def test_dtype_names_and_the_missing_extra(monkeypatch, tiny):
    assert parse_dtype("int8") == "int8" and parse_dtype("INT8-dynamic") == "int8-dynamic"
    with pytest.raises(ConfigError, match="use bf16, fp16, fp32, int8 or int8-dynamic"):
        parse_dtype("int4")
    with pytest.raises(ConfigError, match="int8 mode 'int4'"):
        quantize_int8(copy.deepcopy(tiny), "int4")
    real = builtins.__import__

    def no_torchao(name, *args, **kwargs):
        if name == "torchao" or name.startswith("torchao."):
            raise ImportError("No module named 'torchao'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchao)
    with pytest.raises(ConfigError, match=r"^dtype int8 needs torchao, which is not installed: "
                                          r"pip install 'open4m\[int8\]'"):
        quantize_int8(copy.deepcopy(tiny), "int8")


shipped = pytest.mark.skipif(bool(bundle_missing(SHIPPED)), reason="no world model shipped in src/open4m/assets")


@pytest.fixture(scope="module")
def scene():
    from open4m.data.synthetic import generate_sample, seed_for

    rgb = generate_sample(seed_for("test", 0), 64)["rgb"]
    depth = pipeline("rgb->depth", model=SHIPPED, steps=4, temps=0.0)(rgb).arrays
    return rgb, next(v for k, v in depth.items() if "depth" in k)


@shipped
@pytest.mark.parametrize("mode", INT8_MODES)
def test_the_pipeline_runs_the_shipped_model_in_int8(mode, scene):
    rgb, want = scene
    pipe = pipeline("rgb->depth", model=SHIPPED, dtype=_mode(mode), steps=4, temps=0.0)
    assert is_quantized(pipe.model)
    got = next(v for k, v in pipe(rgb).arrays.items() if "depth" in k)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9  # the same depth map, up to int8 rounding


@shipped
def test_generate_takes_dtype_int8(tmp_path, scene):
    from PIL import Image

    from open4m.cli import main as cli_main

    Image.fromarray(scene[0]).save(tmp_path / "scene.png")
    assert cli_main(["generate", "--model", str(SHIPPED), "--input", f"rgb={tmp_path / 'scene.png'}", "--target",
                     "depth", "--steps", "2", "--dtype", "int8-dynamic", "--out", str(tmp_path / "out")]) == 0
    assert any((tmp_path / "out").glob("*depth*.png"))
