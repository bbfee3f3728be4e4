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
