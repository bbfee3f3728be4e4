"""Run a labeler over a folder dataset: batched, with progress, resumable, written into the layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ...atomic import write_atomic
from ..codecs import IMAGE_EXTS, decode, encode
from .base import Labeler
from ...errors import ConfigError, DataError, NotFound


def _input_files(root: Path, labeler: Labeler) -> dict[str, dict]:
    """Files of every input modality the labeler can use.

    A folder of plain images (no ``rgb/`` sub-folder, images at the top level) serves as the rgb
    modality, so `open4m label` works directly on a directory of JPEGs.
    """
    from ..formats import scan_modality  # imports torch; labelers alone stay light

    files = {}
    for m in labeler.requires + labeler.optional:
        if (root / m).is_dir():
            files[m] = scan_modality(root / m)
        elif m == "rgb" and any(p.suffix.lower() in IMAGE_EXTS for p in root.iterdir() if p.is_file()):
            files[m] = scan_modality(root, recursive=False)
        elif m in labeler.requires:
            raise DataError(f"{root}: labeler {labeler.name!r} needs the {m!r} modality; "
                             f"expected {root / m}/ (or plain images in {root} for rgb)")
    return files


def label_folder(
    root: str | Path, labeler: Labeler, batch_size: int = 16, overwrite: bool = False, progress: bool = True,
) -> Counter:
    """Write `labeler`'s output for every sample of `root` to ``root/<labeler.name>/<key><ext>``.

    Samples whose output already exists are skipped unless `overwrite`, so an interrupted run
    resumes where it stopped. Unreadable inputs are skipped and counted, never fatal.
    Returns counts of ``labeled``, ``skipped`` (already present) and ``corrupt``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"dataset root {root} does not exist")
    files = _input_files(root, labeler)
    keys = sorted(set.intersection(*(set(files[m]) for m in labeler.requires)))
    out_dir = root / labeler.name
    stats: Counter = Counter()
    todo = []
    for key in keys:
        if not overwrite and (out_dir / f"{key}{labeler.ext}").exists():
            stats["skipped"] += 1
        else:
            todo.append(key)
    bar = tqdm(total=len(todo), desc=f"label {labeler.name}", unit="sample", disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch_keys, samples = [], []
        for key in todo[start:start + batch_size]:
            sample = {}
            try:
                for m, mfiles in files.items():
                    if key in mfiles:
                        sample[m] = decode(mfiles[key].read_bytes(), mfiles[key].suffix, m)
            except ValueError:
                stats["corrupt"] += 1
                continue
            batch_keys.append(key)
            samples.append(sample)
        for key, label in zip(batch_keys, labeler.batch(samples) if samples else []):
            write_atomic(out_dir / f"{key}{labeler.ext}", encode(label, labeler.ext, labeler.name))
            stats["labeled"] += 1
        bar.update(len(todo[start:start + batch_size]))
    bar.close()
    return stats
