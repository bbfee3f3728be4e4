"""Fine-tuning data: augmentation and a step-indexed order over a labelled source.

The sources (`world`, class folders, paired rgb + target folders, `Subset`) are the ``labelled``
family of `open4m.sources` (:mod:`open4m.sources.labelled`); :func:`build_sources` picks them
from a recipe's `data` section.

Augmentation reuses `open4m.data.transforms` (one random-resized crop + flip for the image and its
dense target; class ids and depth resized nearest). The training order is a pure function of the
global sample index — epoch permutations and per-sample augmentation seeds derive from
(seed, index) — so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.transforms import augment, center_crop, random_resized_crop, to_tensors
from ..sources import build_source, is_generated
from ..sources.labelled import TARGET_KEY, Subset
from .config import DataSection, TaskSection


def build_sources(data: DataSection, task: TaskSection, seed: int) -> tuple[Any, Any, list[str] | None]:
    """(train source, validation source, class names or None) of a recipe (sources: `open4m.sources.labelled`)."""
    options = dict(family="labelled", task=task.name, image_size=data.image_size)
    if is_generated(data.source, "labelled"):
        if data.val_source is not None:
            raise ValueError("data.val_source must be null with data.source=world (the world has its own val split)")
        train = build_source(data.source, split="train", num_samples=data.num_samples, **options)
        val = build_source(data.source, split="val", num_samples=data.num_val_samples, **options)
        return train, val, train.classes
    train = build_source(data.source, **options)
    if data.val_source is not None:
        return train, build_source(data.val_source, classes=train.classes, **options), train.classes
    n_val = data.num_val_samples
    if not 0 < n_val < len(train):
        raise ValueError(f"data.num_val_samples={n_val} cannot be held out of {len(train)} samples; "
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


class StepData(torch.utils.data.Dataset):
    """Global sample index k -> the k-th training sample: epoch k // n in a seeded permutation, seeded augmentation."""

    def __init__(self, source: Any, transform: Callable, seed: int) -> None:
        self.source, self.transform, self.seed = source, transform, seed
        self._perm: tuple[int, list[int]] | None = None

    def __len__(self) -> int:  # effectively unbounded: the sampler decides which indices are read
        return 2 ** 62

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        epoch, pos = divmod(k, len(self.source))
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(len(self.source), generator=gen).tolist())
        return self.transform(self.source[self._perm[1][pos]], np.random.default_rng([self.seed, k]))


class EvalData(torch.utils.data.Dataset):
    """A source in order, centre-cropped."""

    def __init__(self, source: Any, transform: Callable) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.transform(self.source[i], np.random.default_rng(i))


def loader(dataset: torch.utils.data.Dataset, batch_size: int, indices: Sequence[int], num_workers: int,
           pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """Batches of `indices` in order; a private generator keeps the global RNG (drop-path) untouched."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=num_workers,
                                       pin_memory=pin_memory, generator=torch.Generator().manual_seed(0))
