"""Sample sources: one registry of everything that yields training, fine-tuning or tokenizer samples.

``build_source(spec, family=..., **options)`` turns a recipe string (``synthetic``, ``world``,
``world:DIR``, a folder, a shard root, ``text:PATH``, ...) or a list of mixture entries into a
source; ``list_sources()`` lists what is registered; ``register_source(name, builder)`` adds one.
The procedural world is a source like any other (``open4m.sources.world``).

Families (what the samples are):

==========  =====================================================================  ===========================
family      samples                                                                read by
==========  =====================================================================  ===========================
tokens      model-form token dicts (token ids, sequences, pixels)                  `open4m train`, batch_loader
labelled    ``rgb`` + a task target (``label`` / ``semseg`` / ``depth``)           `open4m finetune`
images      one modality's tensors, preprocessed for a tokenizer                   `open4m train-tokenizer`
aligned     decoded aligned samples (arrays, texts, JSON) keyed by modality        labelers, TokenizingDataset
==========  =====================================================================  ===========================

Masking and batching (`build_masker`, `batch_loader`) live in `open4m.data.batches`: they take any
source, and any list of samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data.batches import batch_loader, build_masker, ordered_batches, sample_batches
from .images import ImageFiles
from .registry import (SourceInfo, build_source, is_generated, list_sources, register_source, resolve_spec_path,
                       source_info)

__all__ = ["SourceInfo", "build_source", "build_sources", "build_recipe_sources", "is_generated", "list_sources",
           "register_source", "resolve_spec_path", "source_info", "ImageFiles",
           # masking and batching live in open4m.data.batches; here for the training tasks' convenience
           "batch_loader", "build_masker", "ordered_batches", "sample_batches"]


def build_sources(entries: Sequence[Mapping[str, Any]], modality_names: Sequence[str], **options: Any) -> Any:
    """`data.sources` entries -> their weighted mixture (the same as ``build_source(entries, modality_names, ...)``)."""
    return build_source(list(entries), modality_names, **options)


def build_recipe_sources(data: Any, *, seed: int = 0) -> tuple[Any, Any]:
    """(train source, validation source or None) of a training recipe's `data` section.

    Reads `source` or `sources`, `val_source`, `modalities`, `folders`, `num_samples`,
    `num_val_samples`, `image_size`. Without `val_source`, a generated source validates on its own
    held-out data: `world` on the val split, `synthetic` on a disjoint seed.
    """
    d = data
    common = dict(image_size=d.image_size, folders=d.folders)
    if d.sources:
        train = build_sources(d.sources, d.modalities, num_samples=d.num_samples, seed=seed, **common)
    else:
        train = build_source(d.source, d.modalities, num_samples=d.num_samples, seed=seed, **common)
    val_name = d.val_source or (d.source if is_generated(d.source) and not d.sources else None)
    val = None if val_name is None else build_source(val_name, d.modalities, num_samples=d.num_val_samples,
                                                     seed=seed + 1_000_003, split="val", **common)
    return train, val


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _is_shard_root(path: Path) -> bool:
    return (path / "index.json").is_file()


_M = "open4m.sources."
# tokens: what `open4m train` reads (data.source / data.sources)
register_source("synthetic", _M + "synthetic:build", form="synthetic", generated=True,
                summary="random token scenes derived from one hidden region map (no data, no tokenizer)")
register_source("world", _M + "world:build", form="world | world:DIR", generated=True, takes_path=True,
                summary="the procedural world, rendered and tokenized by a world model's tokenizers")
register_source("shards", _M + "shards:build", form="<shard root> | shards:DIR", takes_path=True,
                matches=_is_shard_root, summary="pre-tokenized webdataset shards (index.json)")
register_source("tokens", _M + "tokens:build", form="<token folder> | tokens:DIR", takes_path=True,
                matches=_is_dir, summary="pre-tokenized folder root/<modality>/<key>.npy (`open4m tokenize`)")
register_source("mixture", _M + "mixture:build", form="data.sources: [{source, weight, ...}, ...]",
                summary="weighted mixture: map-style and exactly resumable, or a stream if any part is one")
# labelled: what `open4m finetune` reads
register_source("world", _M + "labelled:build_world", family="labelled", form="world", generated=True,
                summary="procedural scenes: object count, segmentation or metric depth")
register_source("classes", _M + "labelled:build_classes", family="labelled", form="classes:DIR", takes_path=True,
                summary="image classification folders root/<class_name>/<image>")
register_source("paired", _M + "labelled:build_paired", family="labelled", form="paired:DIR", takes_path=True,
                summary="aligned folders root/rgb/ + root/<semseg|depth>/")
register_source("folder", _M + "labelled:build_folder", family="labelled", form="<folder>", takes_path=True,
                matches=_is_dir, summary="a plain folder: class folders (classification) or rgb + target folders")
# images: what `open4m train-tokenizer` reads
register_source("images", _M + "images:build", family="images", form="<folder> | images:DIR", takes_path=True,
                matches=_is_dir, summary="every image / .npy file of one modality under a folder")
# aligned: decoded samples
register_source("world", _M + "world:build_scenes", family="aligned", form="world | world:SIZE", generated=True,
                summary="procedural scenes with every modality, rendered on access")
register_source("text", _M + "text:build", family="aligned", form="text:PATH", takes_path=True,
                summary="captions from .txt / .jsonl files (the caption-only part of 4M-21's mixture)")
register_source("shards", _M + "aligned:build_shards", family="aligned", form="<shard root> | shards:DIR",
                takes_path=True, matches=_is_shard_root, summary="per-modality webdataset shards (index.json)")
register_source("folder", _M + "aligned:build_folder", family="aligned", form="<folder> | folder:DIR",
                takes_path=True, matches=_is_dir, summary="folder layout root/<modality>/<key>.<ext>")
register_source("mixture", _M + "mixture:build", family="aligned", form="[{source, weight, ...}, ...]",
                summary="weighted mixture of aligned sources")
