"""The procedural aligned world: seeded 3D scenes with exact ground truth for every modality.

`generate_sample(seed, size)` returns one aligned sample (modality name -> value);
`write_dataset(out, n, size, split)` writes many in the folder layout. Splits are disjoint seed
ranges, so "val scene 3" is the same scene everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .captions import CAPTION_ORDERS, caption, check_caption_order, parse_caption, relations
from .render import Rendering, render
from .scene import COLORS, MATERIALS, SEMSEG_CLASSES, SHAPES, SIZES, Scene, SceneObject, sample_scene
from ...errors import ConfigError

SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 10_000_000),
    "val": (10_000_000, 10_100_000),
    "test": (10_100_000, 10_200_000),
}
MIN_VISIBLE_PIXELS = 4  # fewer visible pixels than this and an object is neither boxed nor captioned
FILE_EXT: dict[str, str] = {
    "rgb": ".png", "depth": ".png", "normal": ".png", "semseg": ".png", "instance": ".png",
    "det": ".json", "caption": ".txt", "scene_graph": ".json",
    "canny_edge": ".png", "sam_edge": ".png", "color_palette": ".json", "metadata": ".json",
}

__all__ = [
    "CAPTION_ORDERS", "COLORS", "FILE_EXT", "MATERIALS", "SEMSEG_CLASSES", "SHAPES", "SIZES", "SPLITS", "Rendering", "Scene",
    "SceneObject", "caption", "check_caption_order", "generate_sample", "parse_caption", "relations", "render", "sample_scene",
    "sample_name", "seed_for", "split_of", "write_dataset",
]


def split_of(seed: int) -> str:
    """The split a seed belongs to."""
    for name, (lo, hi) in SPLITS.items():
        if lo <= seed < hi:
            return name
    raise ConfigError(f"seed {seed} is outside every split range {SPLITS}")


def seed_for(split: str, index: int) -> int:
    """The seed of the `index`-th scene of `split`."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    lo, hi = SPLITS[split]
    if not 0 <= index < hi - lo:
        raise ConfigError(f"index {index} is outside split {split!r} (0..{hi - lo - 1})")
    return lo + index


def sample_name(seed: int) -> str:
    return f"scene_{seed:08d}"


def _boxes(scene: Scene, instance: np.ndarray) -> tuple[list[int], list[list[float]], list[int]]:
    """Visible objects, their normalised pixel boxes (xmin, ymin, xmax, ymax) and pixel counts."""
    h, w = instance.shape
    counts = np.bincount(instance.ravel(), minlength=len(scene.objects) + 1)
    visible, boxes, pixels = [], [], []
    for k in range(1, len(scene.objects) + 1):
        if counts[k] < MIN_VISIBLE_PIXELS:
            continue
        ys, xs = np.nonzero(instance == k)
        visible.append(k - 1)
        boxes.append([float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h)])
        pixels.append(int(counts[k]))
    return visible, boxes, pixels


def generate_sample(seed: int, size: int | tuple[int, int] = 128, labels: bool = True,
                    caption_order: str = "random") -> dict[str, Any]:
    """One aligned sample: every modality of :data:`FILE_EXT` (labeler outputs only if `labels`); its caption
    lists the objects in `caption_order` (:data:`CAPTION_ORDERS`)."""
    scene = sample_scene(seed)
    r = render(scene, size)
    visible, boxes, pixels = _boxes(scene, r.instance)
    facts = relations(scene, visible)
    graph = scene.to_dict()
    graph.update(
        split=split_of(seed), image_size=list(r.semseg.shape), semseg_classes=list(SEMSEG_CLASSES),
        visible=[{"index": i, "pixels": p, "box": b} for i, p, b in zip(visible, pixels, boxes)],
        relations=[{"subject": i, "relation": rel, "object": j} for i, rel, j in facts],
    )
    sample: dict[str, Any] = {
        "rgb": r.rgb, "depth": r.depth, "normal": r.normal, "semseg": r.semseg, "instance": r.instance,
        "det": {"instances": [{"boxes": b, "class_name": scene.objects[i].shape, "score": 1.0}
                              for i, b in zip(visible, boxes)]},
        "caption": caption(scene, visible, order=caption_order, boxes=boxes),
        "scene_graph": graph,
    }
    if labels:
        from ..labelers import CannyEdges, ColorPalette, ImageMetadata, InstanceEdges

        for labeler in (CannyEdges(), InstanceEdges(), ColorPalette(seed=seed), ImageMetadata()):
            sample[labeler.name] = labeler(sample)
    return sample


def _write_scene(job: tuple[str, str, int, int | tuple[int, int], str, str]) -> str:
    """Render and write one scene (a top-level function so worker processes can run it)."""
    from ...atomic import write_atomic
    from ..codecs import encode

    root, split, index, size, rgb_ext, caption_order = job
    seed = seed_for(split, index)
    name = sample_name(seed)
    exts = dict(FILE_EXT, rgb=rgb_ext)
    for modality, value in generate_sample(seed, size, caption_order=caption_order).items():
        write_atomic(Path(root) / modality / f"{name}{exts[modality]}", encode(value, exts[modality], modality))
    return name


def write_dataset(
    out: str | Path, n: int, size: int = 128, split: str = "train", start: int = 0,
    rgb_ext: str = ".png", workers: int = 1, progress: bool = True, caption_order: str = "random",
) -> list[str]:
    """Write scenes `start .. start+n-1` of `split` as `out/<modality>/<name><ext>`; returns the names.

    `workers` > 1 renders in that many processes; the output is identical either way. Captions list their
    objects in `caption_order` (write a world model's, `WorldSpec.caption_order`, to evaluate it on the folder).
    """
    from multiprocessing import get_context

    from tqdm import tqdm

    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if rgb_ext not in (".png", ".jpg"):
        raise ConfigError(f"rgb_ext must be '.png' or '.jpg', got {rgb_ext!r}")
    check_caption_order(caption_order)
    seed_for(split, start + n - 1)  # fail before rendering if the range leaves the split
    jobs = [(str(out), split, index, size, rgb_ext, caption_order) for index in range(start, start + n)]
    bar = dict(total=n, desc=f"synth {split}", disable=not progress, unit="scene")
    if workers == 1:
        return [_write_scene(job) for job in tqdm(jobs, **bar)]
    with get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(_write_scene, jobs, chunksize=8), **bar))
