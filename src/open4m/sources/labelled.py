"""Labelled sources for fine-tuning and evaluation: an RGB image and the task's target per sample.

Samples are dicts with `rgb` (H, W, 3 uint8) and the target of the task: `label` (int),
`semseg` (H, W class ids) or `depth` (H, W metres, 0 = no measurement); each source has `classes`
(names, or None for depth). Sources (family ``labelled`` in the registry):

- `world`: procedural scenes rendered in memory (`open4m.data.synthetic`), train and val from the
  disjoint seed ranges of `seed_for`. The world's classification label is the number of visible
  objects (1..6, CLEVR-style counting; objects with fewer than 4 visible pixels do not count);
  scenes with no visible object are skipped. (The dominant shape would be a natural label too,
  but the 64 px demo model barely tells shapes apart: its semseg IoU on shapes is 0.05-0.16.)
- a folder: ImageFolder layout for classification (`classes:DIR`), the aligned folder layout
  (`FolderDataset`) with `rgb` + `semseg` / `depth` for dense tasks (`paired:DIR`).
- :class:`Subset`: some indices of another source (a held-out validation split).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from ..data.codecs import IMAGE_EXTS, decode
from ..data.formats import FolderDataset
from ..errors import ConfigError, DataError, NotFound

__all__ = ["TARGET_KEY", "WorldSource", "ImageFolderSource", "PairedFolderSource", "Subset", "labelled_folder",
           "build_world", "build_folder", "build_classes", "build_paired"]

logger = logging.getLogger(__name__)

TARGET_KEY = {"classification": "label", "segmentation": "semseg", "depth": "depth"}


class WorldSource:
    """`count` scenes of a world split, rendered once at `size` px and kept in memory."""

    def __init__(self, task: str, split: str, count: int, size: int) -> None:
        from ..data.synthetic import SEMSEG_CLASSES, generate_sample, seed_for
        from ..data.synthetic.scene import MAX_OBJECTS

        if count < 1:
            raise ConfigError(f"the world source needs at least one scene, got {count}")
        counts = [f"{n} object{'s' if n > 1 else ''}" for n in range(1, MAX_OBJECTS + 1)]
        self.classes = counts if task == "classification" else list(SEMSEG_CLASSES)
        self.samples: list[dict[str, Any]] = []
        index = 0
        while len(self.samples) < count:
            scene = generate_sample(seed_for(split, index), size, labels=False)
            index += 1
            sample = {"rgb": scene["rgb"]}
            if task == "classification":
                visible = len(scene["det"]["instances"])
                if visible == 0:
                    continue
                sample["label"] = visible - 1
            else:
                key = TARGET_KEY[task]
                sample[key] = scene[key]
            self.samples.append(sample)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.samples[i]


class ImageFolderSource:
    """root/<class_name>/<image>: classes are the sorted folder names."""

    def __init__(self, root: Path, classes: Sequence[str] | None = None) -> None:
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.classes = list(classes) if classes is not None else found
        if not self.classes:
            raise DataError(f"{root} has no class folders; classification data is root/<class_name>/<image>.png|jpg")
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DataError(f"{root} has class folders {unknown} that the training data does not have")
        self.items = [(p, label) for label, name in enumerate(self.classes) if (root / name).is_dir()
                      for p in sorted((root / name).rglob("*")) if p.suffix.lower() in IMAGE_EXTS]
        if not self.items:
            raise DataError(f"{root}: no images ({', '.join(IMAGE_EXTS)}) in its class folders")
        self.root, self.corrupt = root, {}  # corrupt: unreadable images skipped so far (this process), with why

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Image `i`; an unreadable one is skipped (logged, kept in `corrupt`) for the next good one, as the
        dataset formats do, so one damaged photo never ends a fine-tuning run."""
        for step in range(len(self.items)):
            path, label = self.items[(i + step) % len(self.items)]
            try:
                return {"rgb": decode(path.read_bytes(), path.suffix, "rgb"), "label": label}
            except DataError as err:
                if path not in self.corrupt:
                    self.corrupt[path] = str(err)
                    logger.warning("skipping corrupt image %s (%s); %d skipped so far", path, err, len(self.corrupt))
        raise DataError(f"no image under {self.root} can be read (e.g. {next(iter(self.corrupt))}); replace the "
                        "damaged files")


class PairedFolderSource:
    """root/rgb/<key>.<ext> + root/<target>/<key>.<ext> through the aligned FolderDataset."""

    def __init__(self, root: Path, target: str) -> None:
        missing = [m for m in ("rgb", target) if not (root / m).is_dir()]
        if missing:
            raise NotFound(f"{root} lacks the folders {missing}; {target} data is root/rgb/<key>.png + "
                           f"root/{target}/<key>.(png|npy)")
        self.dataset = FolderDataset(root, ["rgb", target], required=["rgb", target])
        if not len(self.dataset):
            raise DataError(f"{root}: no sample has both rgb and {target}\n{self.dataset.report()}")
        self.target = target
        self.classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.dataset[i]
        image, target = sample["rgb"], sample[self.target]
        if image.shape[:2] != target.shape[:2]:  # one crop cuts both: named here, where the two files are known
            key, files = sample["__key__"], self.dataset.files
            raise DataError(f"{files['rgb'][key]} is {image.shape[1]}x{image.shape[0]} but "
                            f"{files[self.target][key]} is {target.shape[1]}x{target.shape[0]} (width x height); a "
                            f"{self.target} map must have its image's size: resize it (nearest) or remove the pair")
        return {"rgb": image, self.target: target}


class Subset:
    """Some indices of a source (a held-out validation split)."""

    def __init__(self, source: Any, indices: Sequence[int]) -> None:
        self.source, self.indices, self.classes = source, list(indices), source.classes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.source[self.indices[i]]


def labelled_folder(path: str, task: str, classes: Sequence[str] | None = None) -> Any:
    """A folder for `task`: class folders for classification, rgb + target folders otherwise."""
    root = Path(path)
    if not root.is_dir():
        raise NotFound(f"data folder {root} does not exist; point data.source (and data.val_source) at "
                       f"your dataset, or use data.source=world")
    if task == "classification":
        return ImageFolderSource(root, classes)
    return PairedFolderSource(root, TARGET_KEY[task])


def _task(task: str) -> str:
    if task not in TARGET_KEY:
        raise ConfigError(f"unknown task {task!r}; labelled sources serve {sorted(TARGET_KEY)}")
    return task


def build_world(arg: str | None, *, task: str, split: str = "train", num_samples: int = 1024,
                image_size: int = 64) -> WorldSource:
    """`world`: `num_samples` scenes of `split` at `image_size` px with the task's target."""
    if arg:
        raise ConfigError(f"the labelled world source takes no argument, got 'world:{arg}'")
    return WorldSource(_task(task), split, num_samples, image_size)


def build_folder(arg: str, *, task: str, classes: Sequence[str] | None = None) -> Any:
    """A plain folder: class folders or rgb + target folders, by task."""
    return labelled_folder(arg, _task(task), classes)


def build_classes(arg: str | None, *, classes: Sequence[str] | None = None) -> ImageFolderSource:
    """`classes:DIR`: root/<class_name>/<image>."""
    if not arg or not Path(arg).is_dir():
        raise NotFound(f"class folder root {arg!r} does not exist; classification data is root/<class_name>/<image>")
    return ImageFolderSource(Path(arg), classes)


def build_paired(arg: str | None, *, task: str) -> PairedFolderSource:
    """`paired:DIR`: root/rgb/<key>.<ext> + root/<target>/<key>.<ext>."""
    if not arg or not Path(arg).is_dir():
        raise NotFound(f"data folder {arg!r} does not exist; {task} data is root/rgb/ + root/{TARGET_KEY[_task(task)]}/")
    return PairedFolderSource(Path(arg), TARGET_KEY[_task(task)])
