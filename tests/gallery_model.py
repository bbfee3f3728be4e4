"""A tiny FourM that predicts a DINOv2-style global embedding from RGB, and its MLP tokenizer: what the
retrieval tests (index, retrieve) run on in a second."""

from __future__ import annotations

import torch

GLOBAL = "tok_dinov2_global"


def tiny_gallery_model():
    """(model, tokenizer), random-init and seeded, both in eval mode."""
    from open4m.model import FourM, preset
    from open4m.tokenizers.config import VQVAEConfig
    from open4m.tokenizers.vqvae import VQVAE

    torch.manual_seed(0)
    model = FourM(preset("tiny-swiglu_nobias", domains_in=["rgb@224", GLOBAL], domains_out=[GLOBAL], dim=32,
                         encoder_depth=1, decoder_depth=1, num_heads=2)).eval()
    tok = VQVAE(VQVAEConfig(image_size=1, n_channels=768, enc_type="BottleneckMLP/B_2-Wi_128",
                            dec_type="BottleneckMLP/B_2-Wi_128", patch_size=1, quant_type="memcodes",
                            codebook_size=8192, num_codebooks=16, latent_dim=32)).eval()
    return model, tok
