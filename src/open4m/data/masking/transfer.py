"""Fixed roles for fine-tuning and evaluation: `TransferMasking`.

Inputs are fully visible (a sequence input is the whole sequence with `[EOS]`), image targets
fully hidden, sequence targets are `[S_1] sequence [S_2]` with an empty input. No randomness.

Deviation from the official `TransferMasking`, deliberate: a sequence input has no target (the
official one has a lone `[S_1]` target that the shifted decoder can never use).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch

from ... import modalities
from ...batch import ModalityBatch
from ...errors import ConfigError, DataError
from ...modalities import Kind, SpecialTokens
from .assembly import _embedding_entry, _image_entry, _image_positions, _sequence_entry
from .spans import SampleValue, _check_sentinels, _embedding_units, _units


class TransferMasking:
    """Fixed roles for fine-tuning and evaluation: inputs fully visible, targets fully hidden.

    Extra modalities in a sample are ignored, so one dataset serves several transfer tasks.
    """

    def __init__(self, inputs: Iterable[str], targets: Iterable[str], *, image_size: int = 224,
                 special: SpecialTokens = SpecialTokens()) -> None:
        self.inputs, self.targets = tuple(inputs), tuple(targets)
        both = set(self.inputs) & set(self.targets)
        if both:
            raise ConfigError(f"modalities {sorted(both)} are both inputs and targets; list each as one or the other")
        if not self.inputs and not self.targets:
            raise ConfigError("no modalities: give at least one input or target modality")
        self.image_size, self.special = image_size, special
        self.mods = {n: modalities.get(n) for n in (*self.inputs, *self.targets)}
        for name in self.inputs:
            if not self.mods[name].encoder:
                raise ConfigError(f"modality {name!r} cannot be an input (the model has no encoder embedding for it); "
                                  "give it as a target or use another modality as input")
        for name in self.targets:
            if not self.mods[name].decoder:
                raise ConfigError(f"modality {name!r} cannot be a target (input-only); predict its tok_ version instead")
        _check_sentinels(self.mods.values(), special)

    def __call__(self, sample: Mapping[str, SampleValue]) -> dict[str, ModalityBatch]:
        out: dict[str, ModalityBatch] = {}
        for name, mod in self.mods.items():
            if name not in sample:
                raise DataError(f"sample lacks modality {name!r}; add it to the sample or drop it from the masker's "
                                "inputs/targets")
            value, is_input = sample[name], name in self.inputs
            if mod.is_image_like:
                tensor = torch.as_tensor(value)
                if mod.kind is Kind.IMAGE_TOKENS:
                    tensor = tensor.long()
                n = _image_positions(mod, tensor, self.image_size)
                everything = np.arange(n)
                none = everything[:0]
                out[name] = _image_entry(tensor, n, everything if is_input else none, none if is_input else everything)
            elif mod.kind is Kind.SEQUENCE:
                units = _units(value, name, self.special.eos, mod.max_tokens)
                flat = [t for u in units for t in u]
                tgt = [self.special.sentinel(1), *flat, self.special.sentinel(2)]
                out[name] = _sequence_entry(flat, [], mod.max_tokens, self.special) if is_input else \
                    _sequence_entry([], tgt, mod.max_tokens, self.special)
            else:
                emb, units = _embedding_units(value, name, mod.max_tokens)
                out[name] = _embedding_entry(emb, list(range(len(units))), mod.max_tokens)
        return out


__all__ = ["TransferMasking"]
