"""The token dict: the one structure passed between data, masking, model and sampler.

It is the official 4M batch format, so code written for the official models ports unchanged::

    mod_dict = {
        "tok_rgb@224": {
            "tensor": LongTensor (B, N) or (B, h, w)      # token ids; pixels (B, C, H, W) for rgb@*;
                                                          # floats (B, L, E) for sequence embeddings
            "input_mask": BoolTensor (B, N)               # True = NOT given to the encoder
            "target_mask": BoolTensor (B, N)              # True = NOT a target of the decoder
            "decoder_attention_mask": IntTensor (B, N)    # compressed decoder self-attention mask
        },
        ...
    }

Masks use the official polarity (True = excluded). `decoder_attention_mask` is the compressed
form: its cumulative sum along the kept decoder positions says how many positions each query may
attend to. For an image target the first target position holds the number of targets (everything
else 0), for a sequence target every target position holds 1 (causal within the span).

`validate_mod_dict` checks a dict at the boundary (user input, data loader output) and raises
errors that name the modality and the fix, so the model itself never sees malformed batches.
"""

from __future__ import annotations

from typing import Mapping, MutableMapping, TypedDict

import torch

from . import modalities
from .errors import DataError
from .modalities import Kind


class ModalityBatch(TypedDict, total=False):
    tensor: torch.Tensor
    input_mask: torch.Tensor
    target_mask: torch.Tensor
    decoder_attention_mask: torch.Tensor


ModDict = MutableMapping[str, ModalityBatch]

MASK_KEYS = ("input_mask", "target_mask", "decoder_attention_mask")


def num_positions(name: str, tensor: torch.Tensor, patch_size: int | None = None) -> int:
    """How many token positions a modality's tensor holds (pixels count patches)."""
    mod = modalities.get(name)
    if mod.kind is Kind.PIXELS:
        p = patch_size or mod.patch_size
        return (tensor.shape[-2] // p) * (tensor.shape[-1] // p)
    if mod.kind is Kind.SEQUENCE_EMBEDDING:
        return tensor.shape[1]
    return tensor[0].numel() if tensor.dim() > 1 else 1


def validate_mod_dict(mod_dict: Mapping[str, Mapping[str, torch.Tensor]], *, require_masks: bool = True) -> int:
    """Check shapes, dtypes and mask consistency; return the batch size.

    Raises :class:`~open4m.errors.DataError` (a ValueError) naming the modality, what is wrong and the fix,
    never a deep torch error later.
    """
    if not mod_dict:
        raise DataError("empty batch: give at least one modality ({name: {'tensor': ...}})")
    batch_size = None
    for name, entry in mod_dict.items():
        mod = modalities.get(name)
        if "tensor" not in entry:
            raise DataError(f"modality {name!r}: missing 'tensor'; put its token ids (or pixels) under 'tensor'")
        tensor = entry["tensor"]
        if not isinstance(tensor, torch.Tensor):
            raise DataError(f"modality {name!r}: 'tensor' must be a torch.Tensor, got {type(tensor).__name__}; "
                            "convert it with torch.as_tensor")
        if batch_size is None:
            batch_size = tensor.shape[0]
        elif tensor.shape[0] != batch_size:
            raise DataError(f"modality {name!r}: batch size {tensor.shape[0]} differs from the others ({batch_size}); "
                            "give every modality the same batch size")
        if mod.kind is Kind.PIXELS:
            if tensor.dim() != 4 or tensor.shape[1] != (mod.num_channels or 3):
                raise DataError(f"modality {name!r}: expected pixels (B, {mod.num_channels or 3}, H, W), got "
                                f"{tuple(tensor.shape)}; add the batch dimension (x[None]) and give channels first")
        elif mod.kind is Kind.SEQUENCE_EMBEDDING:
            if tensor.dim() != 3 or not tensor.is_floating_point():
                raise DataError(f"modality {name!r}: expected float embeddings (B, L, E), got {tuple(tensor.shape)} "
                                f"{tensor.dtype}; give a float tensor with a batch dimension")
        elif mod.kind in (Kind.IMAGE_TOKENS, Kind.SEQUENCE):
            if tensor.is_floating_point():
                raise DataError(f"modality {name!r}: expected integer token ids, got {tensor.dtype}; tokenize it with "
                                "its tokenizer first (or cast ids with .long())")
            if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= mod.vocab_size):
                raise DataError(
                    f"modality {name!r}: token ids must lie in [0, {mod.vocab_size}), got range "
                    f"[{int(tensor.min())}, {int(tensor.max())}]; tokenize with the tokenizer this model was "
                    "trained with (its vocabulary must be the model's)"
                )
        else:
            raise DataError(f"modality {name!r} is {mod.kind.value} data; tokenize it first (the model sees tokens)")
        if not require_masks:
            continue
        n = num_positions(name, tensor)
        for key in MASK_KEYS:
            if key not in entry:
                raise DataError(f"modality {name!r}: missing {key!r}; build entries with open4m.generation.full_input / "
                                 "empty_target, or mask samples with open4m.data.masking")
            mask = entry[key]
            if tuple(mask.shape) != (batch_size, n):
                raise DataError(f"modality {name!r}: {key} has shape {tuple(mask.shape)}, expected {(batch_size, n)} "
                                 "(batch size, token positions); give one mask entry per position")
        for key in ("input_mask", "target_mask"):
            if entry[key].dtype is not torch.bool:
                raise DataError(f"modality {name!r}: {key} must be bool (True = excluded), got {entry[key].dtype}; "
                                 "cast it with .bool()")
    assert batch_size is not None
    return batch_size
