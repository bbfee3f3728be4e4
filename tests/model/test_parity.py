"""FourM reproduces the official implementation on its golden forward pass (fm7_tiny)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from open4m.model import FourM

MASK_KEYS = ("tensor", "input_mask", "target_mask", "decoder_attention_mask")


@pytest.fixture(scope="module")
def golden(reference_dir):
    path = reference_dir / "fm7_tiny_golden.safetensors"
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    order = json.loads(meta["modality_order"])
    mod_dict = {m: {k: tensors[f"input.{m}.{k}"] for k in MASK_KEYS} for m in order}
    return tensors, mod_dict, int(meta["num_encoder_tokens"]), int(meta["num_decoder_tokens"])


@pytest.fixture(scope="module")
def model(reference_dir):
    return FourM.from_pretrained(reference_dir / "fm7_tiny.safetensors")


def test_config_from_metadata(model):
    cfg = model.config
    assert (cfg.dim, cfg.encoder_depth, cfg.decoder_depth, cfg.num_heads) == (32, 2, 2, 2)
    assert cfg.gated_mlp and cfg.act_layer == "SiLU" and not cfg.norm_bias
    assert model.input_modalities[0] == "rgb@224" and "rgb@224" not in model.output_modalities


@torch.no_grad()
def test_mod_loss_matches(model, golden):
    ref, mod_dict, ne, nd = golden
    loss, per_mod = model(mod_dict, ne, nd, loss_type="mod")
    assert set(per_mod) == {k.split(".", 1)[1] for k in ref if k.startswith("mod_loss.")}
    for name, value in per_mod.items():
        assert value.item() == pytest.approx(ref[f"mod_loss.{name}"].item(), abs=1e-5), name
    assert loss.item() == pytest.approx(ref["loss_mod"].item(), abs=1e-5)


@torch.no_grad()
def test_token_loss_per_modality_matches(model, golden):
    ref, mod_dict, ne, nd = golden
    loss, per_mod = model(mod_dict, ne, nd, loss_type="token")
    for name, value in per_mod.items():
        assert value.item() == pytest.approx(ref[f"token_mod_loss.{name}"].item(), abs=1e-5), name
    # Ours is the true mean over target tokens (the reference weights by vocabulary size too).
    dec = model.select_decoder_tokens(mod_dict, nd)
    counts = {n: int((dec.mod_ids == model.modality_info[n].id).sum()) for n in per_mod}
    assert {n: int(c) for n, c in model(mod_dict, ne, nd, loss_type="token").num_targets.items()} == counts
    expected = sum(per_mod[n] * counts[n] for n in per_mod) / sum(counts.values())
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


@torch.no_grad()
def test_logits_match_at_every_position(model, golden):
    ref, mod_dict, ne, nd = golden
    logits = model(mod_dict, ne, nd, return_logits=True)
    for name, value in logits.items():
        assert value.shape[:2] == (2, nd)
        torch.testing.assert_close(value[..., :16], ref[f"logits16.{name}"], atol=1e-5, rtol=0)
        torch.testing.assert_close(value.logsumexp(-1), ref[f"logsumexp.{name}"], atol=1e-5, rtol=0)


@torch.no_grad()
def test_roundtrip_release_and_hub_layouts(model, golden, reference_dir, tmp_path):
    ref, mod_dict, ne, nd = golden
    expected, _ = model(mod_dict, ne, nd)
    release = model.save_file(tmp_path / "fm.safetensors")
    hub = model.save_pretrained(tmp_path / "hub")
    for source in (release, hub):
        loss, _ = FourM.from_pretrained(source)(mod_dict, ne, nd)
        assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    # What we write has exactly the official keys, shapes and metadata keys.
    with safe_open(str(release), "pt") as ours, \
            safe_open(str(reference_dir / "fm7_tiny.safetensors"), "pt") as theirs:
        assert set(ours.keys()) == set(theirs.keys())
        for key in theirs.keys():
            assert ours.get_slice(key).get_shape() == theirs.get_slice(key).get_shape(), key
        assert set(ours.metadata()) >= set(theirs.metadata())
