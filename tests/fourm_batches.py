"""Small random FourM batches in the official format, for tests of the model and its users."""

from __future__ import annotations

import torch

from open4m import modalities
from open4m.modalities import Kind


def random_batch(names: list[str], batch: int = 2, n_in: int = 24, n_tgt: int = 24, seq_len: int = 16,
                 image_size: int = 224, seed: int = 0) -> dict:
    """Each modality gets random visible inputs and targets (disjoint), sequences a causal target span."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in names:
        m = modalities.get(name)
        if m.kind is Kind.PIXELS:
            n = m.num_tokens(image_size)
            tensor = torch.randn(batch, m.num_channels, m.image_size or image_size, m.image_size or image_size,
                                 generator=g)
        elif m.kind is Kind.SEQUENCE_EMBEDDING:
            n = seq_len
            tensor = torch.randn(batch, n, m.orig_emb_dim, generator=g)
        elif m.kind is Kind.IMAGE_TOKENS:
            n = m.num_tokens(image_size)
            tensor = torch.randint(0, m.vocab_size, (batch, n), generator=g)
        else:
            n = seq_len
            tensor = torch.randint(1, m.vocab_size, (batch, n), generator=g)
        input_mask = torch.ones(batch, n, dtype=torch.bool)
        target_mask = torch.ones(batch, n, dtype=torch.bool)
        dam = torch.zeros(batch, n, dtype=torch.long)
        for b in range(batch):
            if m.is_sequence:
                k = n // 2
                input_mask[b, :k] = False
                if m.decoder:
                    target_mask[b, k:] = False
                    dam[b, k:] = 1
            else:
                perm = torch.randperm(n, generator=g)
                input_mask[b, perm[: min(n_in, n)]] = False
                if m.decoder:
                    tgt = perm[min(n_in, n): min(n_in + n_tgt, n)]
                    target_mask[b, tgt] = False
                    if len(tgt):
                        dam[b, int(tgt.min())] = len(tgt)
        out[name] = {"tensor": tensor, "input_mask": input_mask, "target_mask": target_mask,
                     "decoder_attention_mask": dam}
    return out
