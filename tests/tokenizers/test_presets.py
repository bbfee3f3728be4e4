import numpy as np
import pytest
import torch

from open4m import modalities
from open4m.tokenizers.presets import OFFICIAL_TOKENIZERS, official_config
from open4m.train.tasks.tokenizer import build_tokenizer


def natural_input(tok, rng: np.random.Generator):
    """One sample of the modality in its natural form (what a user or the data pipeline holds)."""
    c = tok.config
    size = c.image_size
    kind = tok.preprocessor.input
    if kind == "image":
        return rng.integers(0, 256, (size, size, c.n_channels) if c.n_channels > 1 else (size, size), dtype=np.uint8)
    if kind == "class_map":
        return rng.integers(0, c.n_labels, (size, size)).astype(np.int64)
    if kind == "depth":
        return rng.uniform(0.5, 20.0, (size, size)).astype(np.float32)
    if kind == "features":
        return rng.standard_normal((c.n_channels, size // c.patch_size, size // c.patch_size)).astype(np.float32)
    return rng.standard_normal(c.n_channels).astype(np.float32)


@pytest.mark.parametrize("name", sorted(OFFICIAL_TOKENIZERS))
def test_every_official_modality_round_trips_through_its_tokenizer(name):
    torch.manual_seed(0)
    kind, cfg = official_config(name, size="tiny")
    tok = build_tokenizer(kind, cfg).eval()
    spec = OFFICIAL_TOKENIZERS[name]
    x = natural_input(tok, np.random.default_rng(0))
    tokens = tok.encode(x)
    assert tokens.dtype == torch.long and int(tokens.max()) < tok.vocab_size
    if spec.tokens in modalities.all_modalities() or f"{spec.tokens}@224" in modalities.all_modalities():
        reg = modalities.get(spec.tokens if spec.tokens in modalities.all_modalities() else f"{spec.tokens}@224")
        if reg.vocab_size and reg.kind.value == "image_tokens":
            assert tok.vocab_size == reg.vocab_size
            assert tokens[0].numel() == reg.num_tokens()
    decoded = tok.decode(tokens, steps=2) if kind == "divae" else tok.decode(tokens)
    out = tok.to_numpy(decoded)
    assert out.shape[0] == 1
    if tok.preprocessor.input == "class_map":
        assert out.shape == (1, cfg["image_size"], cfg["image_size"]) and out.max() < cfg["n_labels"]


def test_official_sizes_are_the_released_ones():
    kind, cfg = official_config("DINOv2-B14-global")
    assert kind == "mlp" and cfg["enc_type"] == "BottleneckMLP/B_6-Wi_1024" and cfg["num_codebooks"] == 16
    assert official_config("rgb")[1]["codebook_size"] == 16384
    with pytest.raises(ValueError, match="no official tokenizer"):
        official_config("smell")


def test_edges_and_sam_masks_carry_their_input_convention():
    """Edges in [-1, 1] like the official edge DiVAE (not standardised like depth: one channel alone implies it)."""
    from open4m.tokenizers.presets import EDGE_MODALITIES, EDGE_PREPROCESS, MASK_PREPROCESS

    for name in EDGE_MODALITIES:
        kind, cfg = official_config(name, size="tiny")
        tok = build_tokenizer(kind, cfg)
        assert kind == "divae" and cfg["preprocess"] == EDGE_PREPROCESS and tok.preprocessor.input == "image"
        x = tok.preprocessor.to_model(np.array([[0, 255], [255, 0]], np.uint8))
        assert x.tolist() == [[[[-1.0, 1.0], [1.0, -1.0]]]]
    assert OFFICIAL_TOKENIZERS["hed_edge"].tokens == "tok_hed_edge"
    _, mask = official_config("sam_mask")
    assert mask["preprocess"] == MASK_PREPROCESS and mask["image_size"] == 64
    mask["preprocess"]["mean"] = [9.0]  # callers get a copy: the table stays as released
    assert official_config("sam_mask")[1]["preprocess"]["mean"] == [0.0]


def test_tiny_config_shrinks_the_kinds_own_networks():
    from open4m.tokenizers.presets import tiny_config

    assert tiny_config("vqvae", {}) == {"enc_type": "vit_t_enc", "dec_type": "vit_t_dec"}  # the default is a ViT-B
    assert tiny_config("vqvae", {"enc_type": "vit_s_enc"})["enc_type"] == "vit_s_enc"  # what the user set stays
    assert tiny_config("mlp", {}) == {}  # no default network (a VQ-VAE's ViT names would be wrong for it)
    assert tiny_config("mlp", {"enc_type": "BottleneckMLP/B_6-Wi_1024"}) == {"enc_type": "BottleneckMLP/B_1-Wi_64"}
