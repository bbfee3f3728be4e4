"""Aligned samples → token dicts for training, tokenized on the fly or read pre-tokenized.

Two kinds of source feed the masked batch loader of :mod:`open4m.data.batches` (which adds the
masking, DataLoader workers and (seed, epoch, index) seeding):

- pre-tokenized folders or shards (`open4m tokenize` output): `open4m.sources.build_source(root, names)`;
- raw aligned data tokenized per sample: :class:`TokenizingDataset` below — one aligned crop and
  flip for every image-like modality (so all token grids describe the same view), then each
  modality through its tokenizer (VQ tokenizers for image-like data, the WordPiece tokenizer and
  the sequence codecs for captions, boxes, palettes and metadata), plus the raw RGB pixels the
  model takes directly.

Tokenizing on the fly costs a tokenizer forward pass per sample and modality; it is the way to
train with fresh augmentations each epoch, pre-tokenizing is the way to train fast.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .. import modalities
from ..errors import ConfigError, DataError
from ..modalities import Kind
from .sequence_inputs import json_list, numbers, sequence_input
from .transforms import AlignedTransform, to_tensors


def codec_input(name: str, value: Any, rng: random.Random | None) -> Any:
    """The on-disk (official JSON) form of a sequence modality → what its codec encodes.

    det: `{"instances": [{"boxes", "class_name", "score"}]}` → boxes; color_palette:
    `[{"1": [[r, g, b]], ..., "7": [...]}]` → one of the stored palettes, its size drawn uniformly
    as the official transform does (from `rng`; the largest one without it); metadata: a dict of
    fields; caption: the text itself.
    """
    from ..tokenizers.sequences import Box

    if name == "caption":
        if not isinstance(value, str):
            raise DataError(f"caption: expected text, got {type(value).__name__}; store the caption as a string")
        return value
    if name == "det":
        instances = value.get("instances", []) if isinstance(value, Mapping) else value
        boxes = []
        for n, inst in enumerate(json_list(instances, name, "instances")):
            if not isinstance(inst, Mapping) or "boxes" not in inst or not isinstance(inst.get("class_name"), str):
                raise DataError(f"det: instance {n} must be a JSON object with 'boxes' [x0, y0, x1, y1] and a "
                                f"'class_name' string, got {inst!r:.80}")
            score = numbers([inst.get("score", 1.0)], name, f"instance {n} score", 1)[0]
            boxes.append(Box(*numbers(inst["boxes"], name, f"instance {n} boxes", 4), class_name=inst["class_name"],
                             score=score))
        return boxes
    if name == "color_palette":
        palettes = value[0] if isinstance(value, list) and value and isinstance(value[0], Mapping) else value
        if isinstance(palettes, Mapping):
            sizes = sorted((k for k in palettes if str(k).isdigit()), key=int)
            if not sizes:
                raise DataError(f"color_palette: expected palettes by size {{\"1\": [[r, g, b]], ...}}, got "
                                f"{palettes!r:.80}")
            palettes = palettes[rng.choice(sizes) if rng else sizes[-1]]
        return [numbers(c, name, "a colour", 3, integers=True) for c in json_list(palettes, name, "colours")]
    if name == "metadata":
        if not isinstance(value, Mapping):
            raise DataError(f"metadata: expected a dict of fields, got {type(value).__name__}; store metadata as a "
                            "JSON object {field: value}")
        return dict(value)
    return value


class TokenizingDataset(torch.utils.data.Dataset):
    """Wraps an aligned dataset (e.g. :class:`open4m.data.formats.FolderDataset`) into token samples.

    `image_tokenizers` maps a model modality (`tok_depth@224`) to `(raw modality, tokenizer)`;
    `sequences` maps a sequence modality (`caption`, `det`, `color_palette`, `metadata`) to the raw
    modality holding it; a sequence-embedding modality there (`t5_caption`, `caption_emb`: ``(L, E)``
    arrays a labeler wrote) passes through as float32, the masker truncates it; `pixels` names the raw
    modality given to the model as `rgb@<size>`.
    Randomness (crop, flip, the palette size and the metadata order of the codecs) comes from
    `(seed, epoch, index)`, so an item is a pure function of its index and `set_epoch`.
    """

    def __init__(self, dataset: Any, *, image_size: int, image_tokenizers: Mapping[str, tuple[str, Any]] | None = None,
                 sequences: Mapping[str, str] | None = None, text_tokenizer: Any = None,
                 pixels: str | None = "rgb", train: bool = True, seed: int = 0) -> None:
        self.dataset, self.image_size, self.seed, self.epoch = dataset, image_size, seed, 0
        self.image_tokenizers = dict(image_tokenizers or {})
        self.sequences = dict(sequences or {})
        self.text_tokenizer, self.pixels = text_tokenizer, pixels
        self.transform = AlignedTransform(image_size, train=train, target=None)
        for name in self.image_tokenizers:
            if modalities.get(name).kind is not Kind.IMAGE_TOKENS:
                raise ConfigError(f"{name!r} is not an image-token modality; image_tokenizers maps tok_* modalities "
                                  f"(e.g. 'tok_depth@{image_size}')")
        self.embeddings = {m for m in self.sequences if modalities.get(m).kind is Kind.SEQUENCE_EMBEDDING}
        if set(self.sequences) - self.embeddings:
            from ..tokenizers.sequences import CODECS

            unknown = [m for m in self.sequences if m not in CODECS and m not in self.embeddings]
            if unknown:
                raise ConfigError(f"no sequence codec for {unknown}; use some of {sorted(CODECS)}")
            if text_tokenizer is None:
                raise ConfigError("sequence modalities need a text tokenizer; pass text_tokenizer= "
                                  "(an open4m TextTokenizer)")
            self.codecs = {m: CODECS[m] for m in self.sequences if m not in self.embeddings}
        if not (self.image_tokenizers or self.sequences or pixels):
            raise ConfigError("nothing to produce: give image_tokenizers, sequences or pixels")

    def set_epoch(self, epoch: int) -> None:
        """A new epoch draws new crops (the masking is reseeded by its own loader)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def modality_names(self) -> list[str]:
        pixels = [f"rgb@{self.image_size}"] if self.pixels else []
        return pixels + list(self.image_tokenizers) + list(self.sequences)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.dataset[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        view = self.transform(raw, rng)
        out: dict[str, Any] = {}
        if self.pixels:
            if self.pixels not in view:
                raise DataError(f"sample {index} has no {self.pixels!r} modality for the pixel input; add it to the "
                                "dataset or pass pixels=None")
            out[f"rgb@{self.image_size}"] = to_tensors({self.pixels: view[self.pixels]}, "fourm")[self.pixels]
        with torch.no_grad():
            for name, (source, tokenizer) in self.image_tokenizers.items():
                if source not in view:
                    raise DataError(f"sample {index} has no {source!r} modality to tokenize into {name!r}; add it to the "
                                    f"dataset or drop {name!r} from image_tokenizers")
                out[name] = tokenizer.encode(view[source][None]).reshape(-1)
        codec_rng = random.Random(int(rng.integers(2**63)))
        for name, source in self.sequences.items():
            if source not in view:
                raise DataError(f"sample {index} has no {source!r} modality for {name!r}; add it to the dataset or drop "
                                f"{name!r} from sequences")
            if name in self.embeddings:
                out[name] = torch.as_tensor(np.asarray(view[source], np.float32))
                continue
            value = sequence_input(name, view[source], codec_rng)
            out[name] = self.codecs[name].encode(value, self.text_tokenizer, codec_rng)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))
