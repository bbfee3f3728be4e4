import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from open4m.tokenizers.config import VQVAEConfig, config_from_dict
from open4m.tokenizers.vqvae import VQVAE

FIXTURES = ["vqvae_semseg_tiny", "vqvae_rgb_tiny", "vqvae_global_mlp_tiny"]


def tiny_config(**kw) -> VQVAEConfig:
    base = dict(image_size=32, n_channels=3, enc_type="vit_t_enc", dec_type="vit_t_dec", patch_size=8,
                codebook_size=64, latent_dim=8)
    base.update(kw)
    return VQVAEConfig(**base)


@pytest.mark.parametrize("name", FIXTURES)
def test_official_tokenizer_parity(reference, name):
    model = VQVAE.from_pretrained(reference / f"{name}.safetensors")
    golden = load_file(str(reference / f"{name}_golden.safetensors"))
    tokens = model.encode(golden["input"])
    assert torch.equal(tokens, golden["tokens"])
    torch.testing.assert_close(model.decode(golden["tokens"]), golden["decoded"], atol=1e-5, rtol=1e-5)


def test_flat_tokens_decode_like_grid_tokens(reference):
    model = VQVAE.from_pretrained(reference / "vqvae_global_mlp_tiny.safetensors")
    golden = load_file(str(reference / "vqvae_global_mlp_tiny_golden.safetensors"))
    flat = golden["tokens"].reshape(2, -1)
    torch.testing.assert_close(model.decode(flat), model.decode(golden["tokens"]))
    # A plain (B, 768) vector is accepted as well as the official (B, 768, 1, 1).
    assert torch.equal(model.encode(golden["input"][:, :, 0, 0]), golden["tokens"])


@pytest.mark.parametrize("layout", ["dir", "file"])
def test_save_and_reload_round_trip(tmp_path, reference, layout):
    model = VQVAE.from_pretrained(reference / "vqvae_semseg_tiny.safetensors")
    target = tmp_path / ("tok" if layout == "dir" else "tok.safetensors")
    model.save_pretrained(target)
    if layout == "dir":
        assert json.loads((target / "config.json").read_text())["n_labels"] == 134
    again = VQVAE.from_pretrained(target)
    x = torch.randint(0, 134, (1, 64, 64))
    assert torch.equal(again.encode(x), model.encode(x))


def test_official_metadata_values_parse_by_type():
    cfg = config_from_dict({"n_labels": "None", "post_mlp": "True", "enc_type": "vit_t_enc",
                            "codebook_size": "1024", "sync_codebook": "True"})
    assert cfg.n_labels is None and cfg.post_mlp is True and cfg.codebook_size == 1024
    with pytest.raises(ValueError, match="unknown vqvae config keys"):
        config_from_dict({"enc_typo": "vit_b_enc"})
    with pytest.raises(ValueError, match="post_mlp"):
        config_from_dict({"post_mlp": "maybe"})


def test_presets_and_explicit_sizes():
    b = VQVAE(tiny_config(enc_type="vit_s_enc", dec_type="vit_t_dec"))
    assert b.encoder.size.dim == 512 and len(b.encoder.blocks) == 8
    custom = VQVAE(tiny_config(enc_type="vit", enc_dim=32, enc_depth=1, enc_heads=4))
    assert custom.encoder.size.dim == 32 and len(custom.encoder.blocks) == 1
    with pytest.raises(ValueError, match="unknown ViT type"):
        VQVAE(tiny_config(enc_type="vit_q_enc"))


def test_variable_resolution_interpolates_positions():
    torch.manual_seed(0)
    model = VQVAE(tiny_config()).eval()
    for size in (32, 48, 64):
        tokens = model.encode(torch.randn(1, 3, size, size))
        assert tokens.shape == (1, size // 8, size // 8)
        assert model.decode(tokens).shape == (1, 3, size, size)


def test_natural_uint8_input_uses_the_configured_normalisation():
    torch.manual_seed(0)
    model = VQVAE(tiny_config()).eval()
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    model_ready = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    assert torch.equal(model.encode(img), model.encode(model_ready))
    out = model.to_numpy(model.decode(model.encode(img)))
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8


def test_corrupt_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        VQVAE.from_pretrained(bad)


def test_missing_path_and_offline_hub_id_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no tokenizer at"):
        VQVAE.from_pretrained(tmp_path / "nope.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        VQVAE.from_pretrained("open4m-test/does-not-exist")


def test_codebook_size_mismatch_is_reported(tmp_path, reference):
    state = load_file(str(reference / "vqvae_rgb_tiny.safetensors"))
    from safetensors import safe_open

    with safe_open(str(reference / "vqvae_rgb_tiny.safetensors"), "pt") as f:
        meta = dict(f.metadata())
    meta["codebook_size"] = "2048"
    save_file(state, str(tmp_path / "x.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="vocab mismatch"):
        VQVAE.from_pretrained(tmp_path / "x.safetensors")
    meta["codebook_size"], meta["post_mlp"] = "1024", "True"
    save_file(state, str(tmp_path / "y.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="missing keys"):
        VQVAE.from_pretrained(tmp_path / "y.safetensors")


def test_bad_tokens_and_inputs_are_rejected(reference):
    model = VQVAE.from_pretrained(reference / "vqvae_semseg_tiny.safetensors")
    with pytest.raises(ValueError, match="token ids must lie"):
        model.decode(torch.full((1, 4, 4), 5000))
    with pytest.raises(ValueError, match="class ids must lie"):
        model.encode(torch.full((1, 64, 64), 134))
    with pytest.raises(ValueError, match="square grid"):
        model.decode(torch.zeros(1, 15, dtype=torch.long))


def test_feature_map_tokenizer_uses_one_token_per_feature_vector():
    torch.manual_seed(0)
    model = VQVAE(tiny_config(n_channels=16, patch_proj=False)).eval()
    assert model.preprocessor.input == "features" and model.config.grid() == (4, 4)
    tokens = model.encode(torch.randn(2, 16, 4, 4))
    assert tokens.shape == (2, 4, 4)
    assert model.decode(tokens).shape == (2, 16, 4, 4)


def test_integer_image_tensors_are_not_silently_misread():
    model = VQVAE(tiny_config()).eval()
    with pytest.raises(ValueError, match="normalised floats"):
        model.encode(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
