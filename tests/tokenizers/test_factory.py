import pytest
import torch
from safetensors.torch import load_file

from open4m.tokenizers import TextTokenizer, VQVAE, load_tokenizer


def test_load_tokenizer_picks_the_class(reference, tmp_path):
    tok = load_tokenizer(reference / "vqvae_rgb_tiny.safetensors")
    assert isinstance(tok, VQVAE)
    golden = load_file(str(reference / "vqvae_rgb_tiny_golden.safetensors"))
    assert torch.equal(tok.encode(golden["input"]), golden["tokens"])
    tok.save_pretrained(tmp_path / "hub")
    assert isinstance(load_tokenizer(tmp_path / "hub"), VQVAE)


def test_load_tokenizer_text(tmp_path):
    TextTokenizer.train(["a dog on a beach"] * 5, vocab_size=4300).save_pretrained(tmp_path)
    assert isinstance(load_tokenizer(tmp_path), TextTokenizer)
    assert isinstance(load_tokenizer(tmp_path / "tokenizer.json"), TextTokenizer)


def test_load_tokenizer_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing")


def test_a_divae_whose_decoder_does_not_match_still_tokenizes_encoder_only(reference, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(reference / "vqvae_rgb_tiny.safetensors"), "pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(dec_type="unet_patched", beta_schedule="linear", prediction_type="sample")
    state["decoder.input_blocks.0.0.weight"] = torch.zeros(4, 3, 3, 3)  # a decoder that is not the preset's
    save_file(state, str(tmp_path / "divae.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="encoder_only=True"):
        load_tokenizer(tmp_path / "divae.safetensors")
    tok = load_tokenizer(tmp_path / "divae.safetensors", encoder_only=True)
    golden = load_file(str(reference / "vqvae_rgb_tiny_golden.safetensors"))
    assert torch.equal(tok.encode(golden["input"]), golden["tokens"])
    with pytest.raises(ValueError, match="encoder-only"):
        tok.decode(golden["tokens"])
