"""The procedural world as a source like any other: `data.source: world` (or `world:DIR`).

Scenes are rendered from their split's seeds (`open4m.data.synthetic`) and tokenized with a world
model's tokenizers — by default the one shipped in the package (`src/open4m/assets/world64`) —
so a recipe trains a FourM on real multimodal data with no preparation step and no download.
Rendering is deterministic, so a resumed run sees the very same samples. `world:DIR` uses the
tokenizers of another world model folder (e.g. the one `open4m demo --train` writes).

A world model folder is an ordinary open4m model folder (`config.json`, `model.safetensors`,
`tokenizers.json` + `tokenizers/`) plus `world.json` (the :class:`WorldSpec`); its tokenizers are
read through `open4m.tokenizers.resolver`, like every model's. Folders of the earlier layout
(`fourm.safetensors`, `tok_<modality>.safetensors`, `text_tokenizer.json`) still load.

`world` in the ``aligned`` family gives the decoded scenes themselves (every modality of
`generate_sample`), rendered on access.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data.synthetic.world import (IMAGE_MODALITIES, WorldSpec, encode_images, read_world_json, register_modalities,
                                    render_world, token_samples)
from ..errors import ConfigError, NotFound

__all__ = ["SHIPPED", "MissingModelError", "WorldTokens", "WorldScenes", "bundle_of", "bundle_missing",
           "is_legacy", "load_tokenizers", "build", "build_scenes"]

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "world64"
_FILES = ("world.json", "model.safetensors", "tokenizers.json")
_LEGACY_FILES = ("world.json", "fourm.safetensors", "text_tokenizer.json",
                 *(f"tok_{b}.safetensors" for b in IMAGE_MODALITIES))


class MissingModelError(NotFound):
    """No world model where one was expected; the message says how to make one."""


# -- a world model folder's tokenizers ------------------------------------------------------------
def bundle_of(source: str) -> Path | None:
    """`world` -> None (the shipped world model); `world:PATH` -> PATH."""
    _, _, path = source.partition(":")
    return Path(path) if path else None


def is_legacy(path: Path) -> bool:
    """A world model written before the standard layout (its FourM in `fourm.safetensors`)."""
    return not (path / "model.safetensors").is_file() and (path / "fourm.safetensors").is_file()


def bundle_missing(path: str | Path) -> list[str]:
    """The files a world model folder lacks (empty when it is complete), in whichever layout it has."""
    path = Path(path)
    if is_legacy(path):
        return [f for f in _LEGACY_FILES if not (path / f).is_file()]
    missing = [f for f in _FILES if not (path / f).is_file()]
    return missing or _unlisted_tokenizers(path)


def _unlisted_tokenizers(path: Path) -> list[str]:
    """The world modalities `tokenizers.json` names no file for, and the listed files that are absent."""
    from ..hub import Origin
    from ..tokenizers.resolver import read_manifest

    _, spec = read_world_json(path)
    table = read_manifest(Origin(path))
    names = [*spec.token_modalities, *spec.sequence_modalities]
    return ([f"tokenizers.json entry for {n}" for n in names if n not in table]
            + sorted({table[n] for n in names if n in table and not (path / table[n]).is_file()}))


def load_tokenizers(path: str | Path | None = None) -> tuple[WorldSpec, dict[str, Any], Any, dict[str, Any]]:
    """A world model's spec (its modalities registered), image tokenizers, text tokenizer and world.json: all but the FourM."""
    path = Path(path) if path else SHIPPED
    missing = bundle_missing(path)
    if missing and path != SHIPPED and (path / "world.json").is_file():  # a world model with files lost: no retrain
        raise MissingModelError(f"{path} is a world model with files missing ({', '.join(missing)}); restore them from "
                                "where the folder came from (a copy or download that left them out), or give a "
                                "complete model folder")
    if missing:
        where = "no world model is shipped in this installation" if path == SHIPPED else f"{path} is not a world model"
        raise MissingModelError(f"{where} (missing {', '.join(missing)}). Train one from scratch with "
                                f"`open4m demo --train --out DIR` (about 8 hours 30 minutes on 2 CPU cores), then run "
                                f"`open4m demo --model DIR/model`.")
    meta, spec = read_world_json(path)
    register_modalities(spec)
    toks, text_tok = _legacy_tokenizers(path) if is_legacy(path) else _listed_tokenizers(path, spec)
    return spec, {b: t.float().eval() for b, t in toks.items()}, text_tok, meta


def _listed_tokenizers(path: Path, spec: WorldSpec) -> tuple[dict[str, Any], Any]:
    """The tokenizers `tokenizers.json` lists, through the resolver every open4m model uses (vocabularies checked)."""
    from ..hub import Origin
    from ..tokenizers.resolver import TokenizerSet

    vocab = {spec.tok(b): int(spec.codebook_sizes[b]) for b in IMAGE_MODALITIES}
    vocab.update({name: spec.text_vocab_size for name in spec.sequence_modalities})
    found = TokenizerSet(origin=Origin(path), registry=False, vocab=vocab)
    return {b: found.get(spec.tok(b)) for b in IMAGE_MODALITIES}, found.get(spec.sequence_modalities[0])


def _legacy_tokenizers(path: Path) -> tuple[dict[str, Any], Any]:
    """`tok_<modality>.safetensors` and `text_tokenizer.json` of a world model of the earlier layout."""
    from ..tokenizers import TextTokenizer, VQVAE

    toks = {b: VQVAE.from_pretrained(path / f"tok_{b}.safetensors") for b in IMAGE_MODALITIES}
    return toks, TextTokenizer.from_pretrained(path / "text_tokenizer.json")


# -- the sources --------------------------------------------------------------------------------
class WorldTokens(torch.utils.data.Dataset):
    """`num_samples` scenes of one split, held in memory in model form (pixels, token ids)."""

    def __init__(self, modality_names: Sequence[str], num_samples: int, *, split: str = "train",
                 bundle: str | Path | None = None, image_size: int | None = None, progress: bool = True) -> None:
        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        spec, tokenizers, text_tok, _ = load_tokenizers(bundle)
        if image_size is not None and image_size != spec.image_size:
            raise ConfigError(f"data.image_size={image_size}, but the world tokenizers work at {spec.image_size} px; "
                              f"set data.image_size: {spec.image_size}")
        unknown = [m for m in modality_names if m not in spec.all_modalities]
        if unknown:
            raise ConfigError(f"the world source has no modality {unknown}; it provides {spec.all_modalities}")
        workers = min(2, os.cpu_count() or 1) if num_samples >= 256 else 1  # a process pool pays off past a few s
        log.info("world source: rendering and tokenizing %d %s scenes at %d px", num_samples, split, spec.image_size)
        data = render_world(split, num_samples, spec.image_size, workers=workers, progress=progress,
                            caption_order=spec.caption_order)
        tokens = {b: encode_images(tokenizers[b], b, data.images[b]) for b in IMAGE_MODALITIES}
        wanted = set(modality_names)
        self.samples = [{m: v for m, v in sample.items() if m in wanted}
                        for _, sample in token_samples(spec, data, tokens, text_tok)]
        self.spec = spec

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self.samples[index])


class WorldScenes(torch.utils.data.Dataset):
    """Scenes `0 .. num_samples-1` of a split as decoded aligned samples, rendered on access (`__key__` = scene name),
    their captions listing objects in `caption_order` (a world model's `WorldSpec.caption_order`)."""

    def __init__(self, num_samples: int, *, split: str = "train", image_size: int = 128, labels: bool = True,
                 caption_order: str = "random") -> None:
        from ..data.synthetic import check_caption_order

        if num_samples < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples, self.split, self.image_size, self.labels = num_samples, split, image_size, labels
        self.caption_order = check_caption_order(caption_order)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        from ..data.synthetic import generate_sample, sample_name, seed_for

        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        seed = seed_for(self.split, index)
        return {"__key__": sample_name(seed), **generate_sample(seed, self.image_size, labels=self.labels,
                                                                caption_order=self.caption_order)}


def build(arg: str | None, *, modality_names: Sequence[str], num_samples: int = 1024, split: str = "train",
          image_size: int | None = None, progress: bool = True) -> WorldTokens:
    """`world` (the shipped world model's tokenizers) or `world:DIR` (another world model folder's)."""
    return WorldTokens(modality_names, num_samples, split=split, bundle=Path(arg) if arg else None,
                       image_size=image_size, progress=progress)


def build_scenes(arg: str | None, *, num_samples: int = 1024, split: str = "train",
                 image_size: int | None = None, caption_order: str = "random") -> WorldScenes:
    """`world` in the aligned family: decoded scenes (`world:SIZE` renders at SIZE px, default 128)."""
    if arg and not arg.isdigit():
        raise ConfigError(f"aligned world scenes take a size, world:SIZE, got 'world:{arg}'")
    return WorldScenes(num_samples, split=split, image_size=int(arg) if arg else (image_size or 128),
                       caption_order=caption_order)
