"""Batch assembly: one sample's masked entry per modality in the fixed layout, and `collate`.

Every entry is the token dict of :mod:`open4m.batch` (`tensor`, `input_mask`, `target_mask`,
`decoder_attention_mask`; True = excluded) at a size fixed by the modality, whatever the
sample's budgets, so differently masked samples stack into one batch.

Deviation from the official `UnifiedMasking`, deliberate: a sequence's target tokens follow its
input tokens directly in the (unchanged-size) tensor instead of starting at the offset
`input_budget`; the model derives positions from the masks, so nothing downstream changes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from ...batch import ModalityBatch, ModDict
from ...errors import DataError
from ...modalities import Kind, Modality, SpecialTokens


def _image_positions(mod: Modality, value: torch.Tensor, image_size: int) -> int:
    """The number of token positions of an image-like value, checked against the registry."""
    n = mod.num_tokens(image_size)
    if mod.kind is Kind.PIXELS:
        size = mod.image_size or image_size
        if value.dim() != 3 or tuple(value.shape[-2:]) != (size, size):
            raise DataError(f"modality {mod.name!r}: expected pixels (C, {size}, {size}), got {tuple(value.shape)}; "
                            f"resize to {size}x{size} first")
    elif value.numel() != n:
        raise DataError(f"modality {mod.name!r}: expected {n} tokens ({mod.grid_size(image_size)} grid), got shape "
                        f"{tuple(value.shape)}; tokenize images of size {image_size} with this modality's tokenizer")
    return n


def _image_entry(tensor: torch.Tensor, n: int, inputs: np.ndarray, targets: np.ndarray) -> ModalityBatch:
    """Positions `inputs` visible, `targets` predicted; the targets' count at the first target position
    (in the decoder attention mask) lets them attend to each other."""
    # Masks are built in numpy and wrapped once: per-sample tensors are tiny and torch's
    # per-op overhead would dominate.
    input_mask = np.ones(n, dtype=bool)
    input_mask[inputs] = False
    target_mask = np.ones(n, dtype=bool)
    target_mask[targets] = False
    decoder_attention_mask = np.zeros(n, dtype=np.int32)
    if len(targets):
        decoder_attention_mask[targets.min()] = len(targets)
    return {"tensor": tensor, "input_mask": torch.from_numpy(input_mask), "target_mask": torch.from_numpy(target_mask),
            "decoder_attention_mask": torch.from_numpy(decoder_attention_mask)}


def _sequence_entry(inp: list[int], tgt: list[int], max_tokens: int, special: SpecialTokens) -> ModalityBatch:
    """Input ids at `[0, len(inp))`, target ids right after them (causal), `[PAD]` up to `2 * (max_tokens + 1)`."""
    length = 2 * (max_tokens + 1)  # the longest input plus the longest target
    end = len(inp) + len(tgt)
    tensor = np.full(length, special.pad, dtype=np.int64)
    tensor[:end] = inp + tgt
    input_mask = np.ones(length, dtype=bool)
    input_mask[:len(inp)] = False
    target_mask = np.ones(length, dtype=bool)
    target_mask[len(inp):end] = False
    return {"tensor": torch.from_numpy(tensor), "input_mask": torch.from_numpy(input_mask),
            "target_mask": torch.from_numpy(target_mask),
            "decoder_attention_mask": torch.from_numpy((~target_mask).astype(np.int32))}


def _embedding_entry(emb: torch.Tensor, inp: list[int], max_tokens: int) -> ModalityBatch:
    """Sequence embeddings reuse span masking on row indices; sentinel rows become zero vectors."""
    tensor = torch.zeros(max_tokens, emb.shape[1], dtype=torch.float32)
    rows = torch.tensor([i for i in inp if i >= 0], dtype=torch.long)
    slots = torch.tensor([j for j, i in enumerate(inp) if i >= 0], dtype=torch.long)
    if len(rows):
        tensor[slots] = emb[rows].float()
    input_mask = torch.ones(max_tokens, dtype=torch.bool)
    input_mask[:len(inp)] = False
    return {"tensor": tensor, "input_mask": input_mask, "target_mask": torch.ones(max_tokens, dtype=torch.bool),
            "decoder_attention_mask": torch.zeros(max_tokens, dtype=torch.int32)}


def collate(samples: Sequence[Mapping[str, ModalityBatch]]) -> ModDict:
    """Stack per-sample masked dicts into one batch (the token dict of :mod:`open4m.batch`)."""
    if not samples:
        raise DataError("cannot collate an empty list of samples; give at least one masked sample")
    names = list(samples[0])
    for i, s in enumerate(samples[1:], 1):
        if list(s) != names:
            raise DataError(f"sample {i} has modalities {list(s)}, sample 0 has {names}; mask every sample with one masker")
    batch: ModDict = {}
    for name in names:
        entry = {}
        for key in samples[0][name]:
            parts = [s[name][key] for s in samples]
            shapes = {tuple(p.shape) for p in parts}
            if len(shapes) > 1:
                raise DataError(f"modality {name!r}: {key} shapes differ across samples {sorted(shapes)}; resize/tokenize consistently")
            entry[key] = torch.stack(parts)
        batch[name] = entry
    return batch


__all__ = ["collate"]
