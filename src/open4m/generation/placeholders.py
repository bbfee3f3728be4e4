"""Token-dict entries for generation, derived from the registry so nobody hand-builds masks.

Three kinds of entry exist while sampling:
- a *full input* (a condition): every token visible to the encoder, nothing to predict;
- an *empty target*: nothing visible yet, every position still to be predicted. A sequence
  target is the span-masking layout `[S_1] | [S_1] ... [S_2]`: the encoder sees only the
  leading `[S_1]` and the decoder fills the span that starts with `[S_1]` and ends at `[S_2]`;
- a *blanked* condition: what classifier-free guidance shows the model instead of a condition.

Deliberate differences from the official helpers: a sequence without `[EOS]` stays as it is
(the official code overwrote its first token with `[EOS]`), and padding is never visible.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .. import modalities
from ..batch import ModalityBatch
from ..errors import ConfigError, DataError
from ..modalities import Kind, Modality, SpecialTokens


def _entry(tensor: torch.Tensor, input_mask: torch.Tensor, target_mask: torch.Tensor) -> ModalityBatch:
    return {"tensor": tensor, "input_mask": input_mask, "target_mask": target_mask,
            "decoder_attention_mask": torch.zeros(input_mask.shape, dtype=torch.int32, device=input_mask.device)}


def _positions(mod: Modality, tensor: torch.Tensor, image_size: int) -> int:
    if mod.kind is Kind.PIXELS:
        size, channels = mod.image_size or image_size, mod.num_channels or 3
        if tensor.dim() != 4 or tuple(tensor.shape[1:]) != (channels, size, size):
            shape = tuple(tensor.shape)
            fix = (f"it looks channels-last: pass tensor.permute(0, 3, 1, 2)" if shape[1:] == (size, size, channels)
                   else f"give {channels} channels" if tensor.dim() == 4 and shape[-2:] == (size, size)
                   else f"resize the image to {size}x{size} first")
            raise DataError(f"{mod.name}: expected pixels (B, {channels}, {size}, {size}), got {shape}; {fix}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):  # else NaN logits, deep in sampling
            raise DataError(f"{mod.name}: the pixels hold NaN or infinite values; give finite normalised pixels "
                            "(or the image itself, which is normalised for you)")
        return mod.num_tokens(image_size)
    n = mod.num_tokens(image_size)
    if tensor[0].numel() != n:
        raise DataError(f"{mod.name}: expected {n} tokens per sample ({mod.grid_size(image_size)} grid), "
                         f"got shape {tuple(tensor.shape)}")
    return n


def full_input(name: str, tensor: torch.Tensor, *, valid: torch.Tensor | None = None,
               special: SpecialTokens = SpecialTokens(), image_size: int = 224) -> ModalityBatch:
    """A condition: pixels (B, C, H, W), token grids (B, N) / (B, h, w), ids (B, L) or embeddings (B, L, E).

    Sequences are visible up to and including their first `[EOS]` (the rest is padding);
    sequences without `[EOS]` show every non-`[PAD]` token. `valid` (B, L) marks the real rows
    of sequence embeddings (all rows when omitted).
    """
    mod = modalities.get(name)
    if not mod.encoder:
        raise ConfigError(f"{name} ({mod.kind.value}) cannot be a model input; tokenize it into its tok_ form first")
    if tensor.dim() < 2:
        raise DataError(f"{name}: expected a batch (first dimension = batch size), got shape {tuple(tensor.shape)}; "
                         "add a batch dimension with tensor[None]")
    b, dev = tensor.shape[0], tensor.device
    if mod.is_image_like:
        n = _positions(mod, tensor, image_size)
        if mod.kind is Kind.IMAGE_TOKENS:
            tensor = tensor.reshape(b, n).long()
        hidden = torch.zeros(b, n, dtype=torch.bool, device=dev)
    elif mod.kind is Kind.SEQUENCE:
        tensor = tensor.long()
        is_eos = tensor == special.eos
        after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
        hidden = after_eos | (tensor == special.pad)
    else:
        if valid is None:
            valid = torch.ones(tensor.shape[:2], dtype=torch.bool, device=dev)
        hidden = ~valid.bool()
    if mod.is_sequence and tensor.shape[1] > (mod.max_tokens or tensor.shape[1]):
        raise DataError(f"{name}: {tensor.shape[1]} positions but at most {mod.max_tokens} fit the model; truncate it")
    return _entry(tensor, hidden, torch.ones_like(hidden))


def empty_target(name: str, batch_size: int, num_tokens: int | None = None, *, device: torch.device | str | None = None,
                 special: SpecialTokens = SpecialTokens(), image_size: int = 224) -> ModalityBatch:
    """A target to generate from scratch.

    Image tokens: the whole grid. Sequences: `num_tokens` positions (default the modality's
    `max_tokens`) laid out as `[S_1] | [S_1] [PAD]... [S_2]`, so at most `num_tokens - 1` tokens
    are generated after the start sentinel (which counts as one).
    """
    mod = modalities.get(name)
    if not mod.decoder:
        raise ConfigError(f"{name} ({mod.kind.value}) cannot be generated; generate its tok_ form instead")
    if mod.kind is Kind.IMAGE_TOKENS:
        n = mod.num_tokens(image_size)
        tensor = torch.zeros(batch_size, n, dtype=torch.long, device=device)
        return _entry(tensor, torch.ones(batch_size, n, dtype=torch.bool, device=device),
                      torch.zeros(batch_size, n, dtype=torch.bool, device=device))
    n = num_tokens if num_tokens is not None else mod.max_tokens
    if not 3 <= n <= mod.max_tokens:
        raise ConfigError(f"{name}: a sequence target needs 3..{mod.max_tokens} positions (start sentinel, tokens, "
                         f"end sentinel), got {n}")
    tensor = torch.full((batch_size, n), special.pad, dtype=torch.long, device=device)
    tensor[:, :2] = special.sentinel(1)
    tensor[:, -1] = special.sentinel(2)
    input_mask = torch.ones(batch_size, n, dtype=torch.bool, device=device)
    input_mask[:, 0] = False
    return _entry(tensor, input_mask, ~input_mask)


def blank(name: str, entry: Mapping[str, torch.Tensor], special: SpecialTokens = SpecialTokens()) -> ModalityBatch:
    """The unconditional stand-in for a condition (classifier-free guidance).

    Image-like: nothing visible. Sequences: only `[S_1]` visible, the empty-caption input the
    models were trained on. Sequence embeddings: one zero row visible (the official models need
    a visible row to be unconditional).
    """
    mod = modalities.get(name)
    tensor, input_mask = entry["tensor"], torch.ones_like(entry["input_mask"])
    if mod.kind is Kind.SEQUENCE:
        tensor = tensor.clone()
        tensor[:, 0] = special.sentinel(1)
        input_mask[:, 0] = False
    elif mod.kind is Kind.SEQUENCE_EMBEDDING:
        tensor = torch.zeros_like(tensor)
        input_mask[:, 0] = False
    return _entry(tensor, input_mask, torch.ones_like(input_mask))


def from_token_lists(rows: list[list[int]], *, special: SpecialTokens = SpecialTokens(),
                     device: torch.device | str | None = None) -> ModalityBatch:
    """A fully visible sequence entry from ragged token lists, right-padded with `[PAD]`.

    Generated sequences come back in this form so they can condition later targets.
    """
    width = max(1, max((len(r) for r in rows), default=0))
    tensor = torch.full((len(rows), width), special.pad, dtype=torch.long)
    hidden = torch.ones(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        tensor[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        hidden[i, :len(row)] = False
    tensor, hidden = tensor.to(device), hidden.to(device)
    return _entry(tensor, hidden, torch.ones_like(hidden))


__all__ = ["full_input", "empty_target", "blank", "from_token_lists"]
