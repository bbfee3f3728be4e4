"""Shared by the sampler tests: a tiny 4M model with spread-out logits."""

from __future__ import annotations

import torch

from open4m.model import FourM, preset

MODS = ["rgb@224", "tok_depth@224", "tok_normal@224", "caption"]


def spread_tiny_model(depth: int) -> FourM:
    """A tiny SwiGLU no-bias model with spread-out logits (random init is near-uniform, full of ties)."""
    torch.manual_seed(0)
    cfg = preset("tiny-swiglu_nobias", domains_in=MODS, domains_out=MODS[1:], dim=32, encoder_depth=depth,
                 decoder_depth=depth, num_heads=2)
    m = FourM(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m
