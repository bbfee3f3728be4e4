"""Run a labeler over a folder dataset: batched, with progress, resumable, written into the layout.

Every run that writes labels records what made them in ``ROOT/labels.json`` (modality -> the
labeler's :meth:`~open4m.data.labelers.base.Labeler.provenance` plus ``date`` and ``count``), merged
into the entries other modalities already have and written atomically under a lock, so two
``open4m label`` processes on one dataset never lose each other's records.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from ... import modalities
from ...atomic import write_atomic, write_text_atomic
from ..codecs import IMAGE_EXTS, decode, encode
from .base import Labeler
from ...errors import ConfigError, DataError, NotFound

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "labels.json"


def read_provenance(root: str | Path) -> dict[str, Any]:
    """``ROOT/labels.json``: modality -> how its labels were made ({} when nothing was labelled yet)."""
    path = Path(root) / PROVENANCE_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not readable JSON ({err}); repair or delete it (it only records provenance)") from err
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object (modality -> record); repair or delete it")
    return data


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on the dataset folder itself (no lock file left behind), where ``fcntl`` exists."""
    try:
        import fcntl
    except ImportError:  # Windows: atomic replacement alone
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def record_provenance(root: str | Path, modality: str, record: dict[str, Any]) -> None:
    """Merge one modality's record into ``ROOT/labels.json`` (read, update, atomic replace, under a lock)."""
    root = Path(root)
    with _locked(root):
        data = read_provenance(root)
        data[modality] = record
        write_text_atomic(root / PROVENANCE_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _output_folders(root: Path) -> set[str]:
    """Top-level folders of `root` that hold modalities, not photos: registered names, labelled ones."""
    registry = modalities.all_modalities().values()
    names = {m.name.split("@", 1)[0] for m in registry} | {m.path for m in registry if m.path}
    from . import LABELERS

    return names | set(LABELERS) | set(read_provenance(root))


def scan_photos(root: Path) -> dict[str, Path]:
    """Key -> image of a plain photo folder, subfolders included (``trip/a.jpg`` is key ``trip/a``).

    Top-level folders named like a modality (``hed_edge/``, ``caption/``) hold labels, and hidden
    files and folders are skipped.
    """
    from ..formats import scan_modality  # imports torch; labelers alone stay light

    return scan_modality(root, exts=IMAGE_EXTS, skip=_output_folders(root), what="photo")


def _input_files(root: Path, labeler: Labeler) -> dict[str, dict[str, Path]]:
    """Files of every input modality the labeler can use.

    A folder of plain images (no ``rgb/`` sub-folder) serves as the rgb modality, its subfolders
    included, so `open4m label` works directly on a directory of photos.
    """
    from ..formats import scan_modality  # imports torch; labelers alone stay light

    files = {}
    for m in labeler.requires + labeler.optional:
        if (root / m).is_dir():
            files[m] = scan_modality(root / m)
        elif m == "rgb" and (photos := scan_photos(root)):
            files[m] = photos
        elif m in labeler.requires:
            raise DataError(f"{root}: labeler {labeler.name!r} needs the {m!r} modality, which has no folder "
                            f"{root / m}/; {labeler.input_hint(m)}")
    return files


def _sample_keys(root: Path, files: dict[str, dict[str, Path]], labeler: Labeler) -> set[str]:
    """Every sample of the dataset the labeler's inputs tell of: keys of its required inputs and of the rgb.

    The rgb (an ``rgb/`` folder or the plain photos) defines the samples even for a labeler that
    does not read it, so a photo without a caption shows up as lacking one instead of being ignored.
    """
    from ..formats import scan_modality

    keys = set().union(*(set(files[m]) for m in labeler.requires))
    if "rgb" in files:
        keys |= set(files["rgb"])
    elif (root / "rgb").is_dir():
        keys |= set(scan_modality(root / "rgb"))
    else:
        keys |= set(scan_photos(root))
    return keys


def label_folder(
    root: str | Path, labeler: Labeler, batch_size: int = 16, overwrite: bool = False, progress: bool = True,
    skipped: list[str] | None = None,
) -> Counter:
    """Write `labeler`'s output for every sample of `root` to ``root/<labeler.name>/<key><ext>``.

    Samples whose output already exists are skipped unless `overwrite`, so an interrupted run
    resumes where it stopped. Unreadable inputs are skipped and counted, never fatal. A run that
    writes labels records the labeler's provenance in ``root/labels.json`` (``count``: samples that
    have the label now). Returns counts of ``labeled``, ``skipped`` (already present), ``corrupt``
    (unreadable input, logged) and ``missing`` (samples lacking a required input, e.g. a photo
    without a caption; logged with how to add it). With `skipped`, each corrupt input file is listed
    there as "path (reason)" for the caller's summary.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    root = Path(root)
    if root.is_file():
        raise DataError(f"--data {root} is a file; give the dataset folder (DIR/rgb/...) or a folder of photos")
    if not root.is_dir():
        raise NotFound(f"dataset root {root} does not exist")
    read_provenance(root)  # a damaged labels.json is refused before any work, not after it
    files = _input_files(root, labeler)
    keys = sorted(set.intersection(*(set(files[m]) for m in labeler.requires)))
    out_dir = root / labeler.name
    stats: Counter = Counter()
    corrupt_files = skipped if skipped is not None else []
    lacking = sorted(_sample_keys(root, files, labeler).difference(keys))
    if lacking:
        stats["missing"] = len(lacking)
        absent = [m for m in labeler.requires if lacking[0] not in files[m]]
        logger.warning("%d sample(s) lack an input of %s and are not labelled (e.g. %s has no %s); %s", len(lacking),
                       labeler.name, lacking[0], "/".join(absent), labeler.input_hint(absent[0]))
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
            sample, bad = {}, None
            for m, mfiles in files.items():
                if key in mfiles:
                    try:
                        sample[m] = decode(mfiles[key].read_bytes(), mfiles[key].suffix, m)
                    except ValueError as err:
                        bad = f"{mfiles[key]} ({err})"
                        break
            if bad is not None:  # the sample is left unlabelled, named in the log and counted in the summary
                logger.warning("skipping %s: corrupt file %s", key, bad)
                stats["corrupt"] += 1
                corrupt_files.append(bad)
                continue
            batch_keys.append(key)
            samples.append(sample)
        for key, label in zip(batch_keys, labeler.batch(samples) if samples else []):
            write_atomic(out_dir / f"{key}{labeler.ext}", encode(label, labeler.ext, labeler.name))
            stats["labeled"] += 1
        bar.update(len(todo[start:start + batch_size]))
    bar.close()
    if stats["corrupt"] and not stats["labeled"] and not stats["skipped"]:
        raise DataError(f"none of the {stats['corrupt']} sample(s) under {root} can be read (e.g. {corrupt_files[0]}); "
                        "replace the damaged files, or point --data at the dataset that holds good ones")
    if stats["labeled"]:
        _record(root, labeler, stats)
    return stats


def _comparable(value: Any) -> Any:
    """A record part without its file paths (a moved environment is still the same model)."""
    return {k: v for k, v in value.items() if k != "path"} if isinstance(value, dict) else value


def _record(root: Path, labeler: Labeler, stats: Counter) -> None:
    """The provenance record of a run that wrote labels; warns when it mixes with another labeler's files."""
    record = labeler.provenance()
    previous = read_provenance(root).get(labeler.name)
    same = previous is not None and all(_comparable(previous.get(k)) == _comparable(record[k])
                                        for k in ("labeler", "model", "options"))
    if stats["skipped"] and previous is not None and not same:
        logger.warning("%s/ now mixes labels of two labelers (%s kept from before); relabel all with --overwrite",
                       labeler.name, stats["skipped"])
    record["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record["count"] = stats["labeled"] + stats["skipped"]
    record_provenance(root, labeler.name, record)
