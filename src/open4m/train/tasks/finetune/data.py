"""Fine-tuning data: augmentation and a step-indexed order over a labelled source.

The sources (`world`, class folders, paired rgb + target folders, `Subset`) are the ``labelled``
family of `open4m.sources` (:mod:`open4m.sources.labelled`); :func:`build_sources` picks them
from a recipe's `data` section.

Augmentation reuses `open4m.data.transforms` (one random-resized crop + flip for the image and its
dense target; class ids and depth resized nearest). Batches come from `open4m.data.batches`
(`sample_batches`, with :class:`Transform` as the per-sample function), the same order as every
other task: epoch permutations and augmentation seeds derive from (seed, index), so a resumed run
sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ....data.transforms import augment, center_crop, random_resized_crop, to_tensors
from ....errors import ConfigError
from ....sources import build_source, is_generated
from ....sources.labelled import TARGET_KEY, Subset
from .recipe import DataSection, TaskSection


def build_sources(data: DataSection, task: TaskSection, seed: int) -> tuple[Any, Any, list[str] | None]:
    """(train source, validation source, class names or None) of a recipe (sources: `open4m.sources.labelled`)."""
    options = dict(family="labelled", task=task.name, image_size=data.image_size)
    if is_generated(data.source, "labelled"):
        if data.val_source is not None:
            raise ConfigError("data.val_source must be null with data.source=world (the world has its own val split)")
        train = build_source(data.source, split="train", num_samples=data.num_samples, **options)
        val = build_source(data.source, split="val", num_samples=data.num_val_samples, **options)
        return train, val, train.classes
    train = build_source(data.source, **options)
    if data.val_source is not None:
        return train, build_source(data.val_source, classes=train.classes, **options), train.classes
    n_val = data.num_val_samples
    if not 0 < n_val < len(train):
        raise ConfigError(f"data.num_val_samples={n_val} cannot be held out of {len(train)} samples; "
                         "lower it or give data.val_source")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(train, order[n_val:]), Subset(train, order[:n_val]), train.classes


# ------------------------------------------------------------------------------------------
# Augmentation and batching
# ------------------------------------------------------------------------------------------
class Transform:
    """Crop (random or centred) + flip + resize of image and dense target; tensors out."""

    def __init__(self, data: DataSection, task: TaskSection, train: bool) -> None:
        self.size, self.train, self.task = data.image_size, train, task
        self.scale, self.flip = tuple(data.crop_scale), data.flip
        self.norm = "fourm" if data.pixel_norm == "imagenet" else "tokenizer"
        self.reduce_zero_label = data.reduce_zero_label

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        key = TARGET_KEY[self.task.name]
        h, w = sample["rgb"].shape[:2]
        crop = (random_resized_crop(h, w, rng, self.scale, flip_prob=0.5 if self.flip else 0.0) if self.train
                else center_crop(h, w))
        images = {k: sample[k] for k in ("rgb", key) if isinstance(sample.get(k), np.ndarray)}
        out = augment(images, crop, self.size)
        image = to_tensors({"rgb": out["rgb"]}, self.norm)["rgb"]
        if key == "label":
            return {"image": image, "target": torch.tensor(sample["label"], dtype=torch.long)}
        if key == "depth":
            return {"image": image, "target": torch.from_numpy(np.ascontiguousarray(out["depth"], np.float32))}
        labels = torch.from_numpy(np.ascontiguousarray(out["semseg"]).astype(np.int64))
        if self.reduce_zero_label:
            labels = torch.where(labels == 0, self.task.ignore_index, labels - 1)
        return {"image": image, "target": labels}
