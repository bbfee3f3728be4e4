"""Aligned datasets on disk: the folder layout and webdataset shards, and conversion between them.

Folder layout: ``root/<modality>/<any subfolders>/<sample>.<ext>``; files of different
modalities belong to one sample when their paths relative to the modality folder match without
the extension. Shards: ``root/<modality>/shard-00000.tar ...``; shard *i* of every modality holds
the same samples under the same keys, in sorted key order, so modalities stream independently
(and from object stores) and merge by key. Both forms store the very same file bytes (see
:mod:`open4m.data.codecs`), which makes conversion lossless.

Policies: a sample lacking a modality is kept and reported (`missing`), never filled in; a file
that fails to decode is skipped with a warning and counted (`corrupt`), never ending the epoch.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import logging
import os
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from ..atomic import staged_file, write_atomic
from .codecs import EXTS, IMAGE_EXTS, decode
from ..errors import ConfigError, DataError, NotFound

INDEX_FILE = "index.json"

logger = logging.getLogger(__name__)


class CorruptFileWarning(UserWarning):
    """A file that could not be decoded and was skipped."""


def scan_modality(folder: Path, recursive: bool = True, *, exts: Iterable[str] = EXTS,
                  skip: Iterable[str] = (), what: str = "sample") -> dict[str, Path]:
    """Relative key (no extension) -> file, for one modality folder (top level only if not `recursive`).

    Hidden files and folders are ignored, and so are the top-level folders named in `skip` (a photo
    folder's label folders); `exts` are the file types read.
    """
    exts, skip = {e.lower() for e in exts}, set(skip)
    files: dict[str, Path] = {}
    for dirpath, subdirs, names in os.walk(folder):
        top = Path(dirpath) == Path(folder)
        subdirs[:] = [] if not recursive else sorted(d for d in subdirs if not d.startswith(".")
                                                     and not (top and d in skip))
        for name in sorted(names):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in exts or name.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(dirpath, stem), folder).replace(os.sep, "/")
            if rel in files:
                raise DataError(f"{folder}: {what} {rel!r} has two files ({files[rel].name}, {name}); keep one")
            files[rel] = Path(dirpath) / name
    return files


class FolderDataset(torch.utils.data.Dataset):
    """Map-style aligned dataset over the folder layout.

    `modalities` defaults to every sub-folder of `root`; samples lacking any of `required`
    (default: none) are left out of the index and counted in `excluded`. Each item is a dict
    modality -> decoded value plus ``"__key__"``; `decode=False` yields raw bytes and extensions
    instead (``{m: (bytes, ext)}``), which is what conversion uses.
    """

    def __init__(
        self, root: str | Path, modalities: Sequence[str] | None = None, required: Sequence[str] = (),
        decode: bool = True, transform: Callable[[dict], dict] | None = None,
    ) -> None:
        self.root = Path(root)
        if self.root.is_file():
            raise DataError(f"dataset root {self.root} is a file; give the folder holding <modality>/<sample>.<ext>")
        if not self.root.is_dir():
            raise NotFound(f"dataset root {self.root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.modalities = list(modalities) if modalities is not None else found
        loose = [p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS] if not found else []
        move = (f"; its {len(loose)} image(s) lie directly in it: move them into {self.root / 'rgb'}/ to make it a "
                "dataset of one modality") if loose else ""  # a plain photo folder: say the one move that fixes it
        absent = [m for m in self.modalities if m not in found]
        if absent:
            close = [c for m in absent for c in difflib.get_close_matches(m, found, n=1, cutoff=0.5)]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DataError(f"{self.root}: no folder for modalities {absent}{hint}; found {found} (a dataset holds "
                            f"root/<modality>/<sample>.<ext>){move}")
        if not self.modalities:
            raise DataError(f"{self.root} holds no modality folders (expected root/<modality>/<sample>.<ext>){move}")
        self.required = list(required)
        unknown = set(self.required) - set(self.modalities)
        if unknown:
            raise ConfigError(f"required modalities {sorted(unknown)} are not among {self.modalities}")
        self.files = {m: scan_modality(self.root / m) for m in self.modalities}
        all_keys = sorted(set().union(*(f.keys() for f in self.files.values())))
        self.keys = [k for k in all_keys if all(k in self.files[m] for m in self.required)]
        self.excluded = len(all_keys) - len(self.keys)
        self.missing = Counter({m: sum(k not in self.files[m] for k in self.keys) for m in self.modalities})
        self.corrupt: Counter[str] = Counter()
        self.corrupt_files: dict[Path, str] = {}  # each file skipped so far, with the reason (for summaries)
        self.decode, self.transform = decode, transform

    def __len__(self) -> int:
        return len(self.keys)

    def report(self) -> str:
        """One line per modality: how many samples lack it, how many files failed to decode."""
        lines = [f"{len(self)} samples in {self.root} ({self.excluded} excluded for lacking {self.required})"]
        lines += [f"  {m}: {len(self) - self.missing[m]} present, {self.missing[m]} missing, {self.corrupt[m]} corrupt"
                  for m in self.modalities]
        return "\n".join(lines)

    def load(self, key: str) -> dict[str, Any] | None:
        """The sample `key`, or None when one of its required files is corrupt (counted, warned)."""
        sample: dict[str, Any] = {"__key__": key}
        for m in self.modalities:
            path = self.files[m].get(key)
            if path is None:
                continue
            data = path.read_bytes()
            if not self.decode:
                sample[m] = (data, path.suffix.lower())
                continue
            try:
                sample[m] = decode(data, path.suffix, m)
            except ValueError as err:
                self.corrupt[m] += 1
                self.corrupt_files[path] = str(err)
                warnings.warn(f"skipping corrupt file {path} ({err}); {self.corrupt[m]} corrupt {m} files so far",
                              CorruptFileWarning, stacklevel=2)
                if m in self.required:
                    return None
        return self.transform(sample) if self.transform else sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample `index`; a sample with a corrupt required file is replaced by the next good one."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        for step in range(len(self)):
            sample = self.load(self.keys[(index + step) % len(self)])
            if sample is not None:
                return sample
        raise DataError(f"every sample of {self.root} has a corrupt required file; see the warnings")


# -- shards --------------------------------------------------------------------------------------
def shard_name(index: int) -> str:
    return f"shard-{index:05d}.tar"


def write_shards(
    samples: Iterable[dict[str, Any]], out: str | Path, modalities: Sequence[str], samples_per_shard: int = 1000,
) -> dict[str, Any]:
    """Write raw samples (``{"__key__", m: (bytes, ext)}``, sorted by key) as per-modality shards.

    Returns the index written to ``out/index.json`` (modalities, shard and sample counts).
    """
    import webdataset as wds

    if samples_per_shard < 1:
        raise ConfigError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out = Path(out)
    writers: dict[str, Any] = {}
    counts: Counter[str] = Counter()
    n = shard = 0
    last_key = None

    staged = contextlib.ExitStack()  # each shard is written under a temporary name, renamed when complete

    def close(error: BaseException | None = None) -> None:
        for w in writers.values():
            w.close()
        writers.clear()
        staged.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)

    try:
        for sample in samples:
            key = sample["__key__"]
            if "." in key or (last_key is not None and key <= last_key):
                raise DataError(f"shard keys must be dot-free and strictly increasing; got {key!r} after {last_key!r}")
            last_key = key
            if n and n % samples_per_shard == 0:
                close()
                shard += 1
            if not writers:
                for m in modalities:
                    tmp = staged.enter_context(staged_file(out / m / shard_name(shard)))
                    writers[m] = wds.TarWriter(str(tmp), encoder=False)
            for m in modalities:
                if m in sample:
                    data, ext = sample[m]
                    writers[m].write({"__key__": key, ext.lstrip("."): data})
                    counts[m] += 1
            n += 1
    except BaseException as err:
        close(err)  # the unfinished shards' temporary files are removed
        raise
    close()
    index = {"modalities": list(modalities), "num_shards": shard + 1 if n else 0, "num_samples": n,
             "samples_per_shard": samples_per_shard, "files_per_modality": dict(counts)}
    write_atomic(out / INDEX_FILE, json.dumps(index, indent=1).encode())
    return index


def _merge_by_key(streams: dict[str, Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Merge per-modality streams, each sorted by key, into samples (a k-way merge on keys)."""
    heads = {m: next(s, None) for m, s in streams.items()}
    while True:
        live = [h["__key__"] for h in heads.values() if h is not None]
        if not live:
            return
        key = min(live)
        sample: dict[str, Any] = {"__key__": key}
        for m, head in heads.items():
            if head is not None and head["__key__"] == key:
                sample[m] = next((v, "." + ext) for ext, v in head.items() if not ext.startswith("__"))
                heads[m] = next(streams[m], None)
        yield sample


class ShardDataset(torch.utils.data.IterableDataset):
    """Streams aligned samples from per-modality webdataset shards.

    `root` is a local folder or a URL prefix (``https://...``, ``s3://...`` through ``pipe:``
    commands, anything `webdataset` opens); `num_shards` is read from ``root/index.json`` when local.
    Shards are shuffled per epoch (`shuffle_shards`), split across distributed ranks and DataLoader
    workers, and samples pass a shuffle buffer of `shuffle_buffer` (0 = keep order). `split(part, parts)`
    gives a copy that reads only every parts-th shard of each epoch's order, whatever the rank: the
    training loader reads one such part per piece of the global batch, so its batches do not depend on
    the number of ranks.
    """

    def __init__(
        self, root: str, modalities: Sequence[str], num_shards: int | None = None, required: Sequence[str] = (),
        decode: bool = True, shuffle_shards: bool = False, shuffle_buffer: int = 0, seed: int = 0,
        transform: Callable[[dict], dict] | None = None, url_template: str = "{root}/{modality}/{shard}",
    ) -> None:
        super().__init__()
        self.root, self.modalities, self.required = str(root).rstrip("/"), list(modalities), list(required)
        if num_shards is None:
            if not (Path(self.root) / INDEX_FILE).is_file():
                raise DataError(f"no {INDEX_FILE} under {self.root}; pass num_shards for remote shards")
            num_shards = read_index(self.root)["num_shards"]
        self.num_shards = num_shards
        self.decode, self.shuffle_shards, self.shuffle_buffer = decode, shuffle_shards, shuffle_buffer
        self.seed, self.epoch, self.transform, self.url_template = seed, 0, transform, url_template
        self.corrupt: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()
        self.unreadable: list[str] = []  # shard files (or parts) that could not be read, with the reason
        self.part: tuple[int, int] | None = None  # (part, parts) of `split`; None: split by rank and worker

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle shards for a new epoch (the same epoch gives the same order on every rank)."""
        self.epoch = epoch

    def split(self, part: int, parts: int) -> "ShardDataset":
        """A copy streaming shards `part, part + parts, ...` of each epoch's (shuffled) shard order."""
        if not 0 <= part < parts:
            raise ConfigError(f"part {part} of {parts}: give 0 <= part < parts")
        if parts > self.num_shards:
            raise DataError(f"{self.root} has {self.num_shards} shard(s), fewer than the {parts} parts a training step "
                            "reads (one per rank and accumulation step); write at least that many shards "
                            "(open4m convert --to shards --shard-size with fewer samples per shard)")
        other = copy.copy(self)
        other.part = (part, parts)
        return other

    def url(self, modality: str, shard: int) -> str:
        return self.url_template.format(root=self.root, modality=modality, shard=shard_name(shard))

    def _handler(self, err: Exception, url: str = "") -> bool:
        self.corrupt["<tar>"] += 1
        reason = _shard_error(err, url)
        if reason not in self.unreadable:
            self.unreadable.append(reason)
        warnings.warn(f"skipping unreadable shard data ({reason})", CorruptFileWarning, stacklevel=2)
        return True

    def _samples_of_shard(self, shard: int) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        streams = {m: wds.tarfile_samples(iter([{"url": self.url(m, shard)}]),
                                          handler=lambda err, url=self.url(m, shard): self._handler(err, url))
                   for m in self.modalities}
        yield from _merge_by_key(streams)

    def _decoded(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        sample: dict[str, Any] = {"__key__": raw["__key__"]}
        for m in self.modalities:
            if m not in raw:
                self.missing[m] += 1
                if m in self.required:
                    return None
                continue
            data, ext = raw[m]
            if not self.decode:
                sample[m] = (data, ext)
                continue
            try:
                sample[m] = decode(data, ext, m)
            except ValueError as err:
                self.corrupt[m] += 1
                warnings.warn(f"skipping corrupt {m} of {raw['__key__']} ({err})", CorruptFileWarning, stacklevel=2)
                if m in self.required:
                    return None
        return self.transform(sample) if self.transform else sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        shards = list(range(self.num_shards))
        if self.shuffle_shards:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(shards)
        if self.part is None:
            shards = list(wds.split_by_node(shards))
        else:
            shards = shards[self.part[0]::self.part[1]]
        shards = list(wds.split_by_worker(shards))
        stream = (s for shard in shards for s in self._samples_of_shard(shard))
        decoded = (d for d in map(self._decoded, stream) if d is not None)
        if self.shuffle_buffer > 0:
            info = torch.utils.data.get_worker_info()
            stream_id = f"{info.id if info else 0}" + ("" if self.part is None else f"-part{self.part[0]}")
            rng = random.Random(f"{self.seed}-{self.epoch}-{stream_id}")
            decoded = wds.filters._shuffle(decoded, self.shuffle_buffer, min(100, self.shuffle_buffer), rng=rng)
        yield from decoded


def _shard_error(err: Exception, url: str) -> str:
    """webdataset's error for an unreadable shard as one phrase naming the file: "url: reason"."""
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    else:
        text = next((a for a in err.args if isinstance(a, str)), "") or str(err)
        reason = text.split(" @ <", 1)[0].strip() or type(err).__name__  # drop the reader's repr
    return f"{url or getattr(err, 'filename', '') or 'shard'}: {reason}"


def is_shard_root(root: str | Path) -> bool:
    return (Path(root) / INDEX_FILE).is_file()


def read_index(root: str | Path) -> dict[str, Any]:
    """A shard root's ``index.json`` (what `write_shards` wrote), checked: a damaged one is a `DataError` naming it."""
    path = Path(root) / INDEX_FILE
    fix = f"rewrite it by converting the folder dataset again (open4m convert --to shards), or restore {INDEX_FILE}"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{root} has no {INDEX_FILE}: it is not a shard root ({fix})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as err:
        raise DataError(f"{path} is not a readable shard index ({err}); {fix}") from None
    if not isinstance(index, dict):
        raise DataError(f"{path} must hold a JSON object, got {type(index).__name__}; {fix}")
    bad = [k for k, kind in (("modalities", list), ("num_shards", int), ("num_samples", int))
           if not isinstance(index.get(k), kind) or isinstance(index.get(k), bool)]
    if bad:
        raise DataError(f"{path} lacks valid {', '.join(bad)}; {fix}")
    return index


def folder_to_shards(src: str | Path, dst: str | Path, samples_per_shard: int = 1000,
                     modalities: Sequence[str] | None = None, progress: bool = True,
                     skipped: list[str] | None = None) -> dict[str, Any]:
    """Convert a folder dataset to shards byte for byte.

    Every file is decoded once on the way (as training will): a corrupt one is left out of the shards
    and, with `skipped`, listed there ("path (reason)"), so a damaged file is found now, not mid-run.
    """
    from tqdm import tqdm

    ds = FolderDataset(src, modalities=modalities, decode=False)
    bad = skipped if skipped is not None else []

    def checked(key: str) -> dict[str, Any]:
        sample = ds.load(key)
        for m in ds.modalities:
            if m in sample:
                try:
                    decode(*sample[m], m)
                except ValueError as err:
                    bad.append(f"{ds.files[m][key]} ({err})")
                    logger.warning("skipping corrupt file %s (%s)", ds.files[m][key], err)
                    del sample[m]
        return sample

    samples = (checked(k) for k in tqdm(ds.keys, desc="folder -> shards", disable=not progress, unit="sample"))
    # a sample whose every file was corrupt holds nothing: counted, it made index.json (and the report) one
    # sample more than the shards hold
    return write_shards((s for s in samples if len(s) > 1), dst, ds.modalities, samples_per_shard)


def shards_to_folder(src: str | Path, dst: str | Path, modalities: Sequence[str] | None = None,
                     progress: bool = True, skipped: list[str] | None = None) -> int:
    """Convert shards (with an index.json) to the folder layout byte for byte; returns the sample count.

    Unreadable shard files (missing, truncated) are skipped with what they still hold; with `skipped`,
    each is listed there ("shard: reason").
    """
    from tqdm import tqdm

    index = read_index(src)
    ds = ShardDataset(str(src), modalities or index["modalities"], decode=False)
    n = 0
    bad = skipped if skipped is not None else []
    for sample in tqdm(ds, total=index["num_samples"], desc="shards -> folder", disable=not progress, unit="sample"):
        for m in ds.modalities:
            if m in sample:
                data, ext = sample[m]
                try:
                    decode(data, ext, m)
                except ValueError as err:
                    bad.append(f"{ds.url(m, 0).rsplit('/', 1)[0]}: {sample['__key__']}{ext} ({err})")
                    logger.warning("skipping corrupt %s of %s (%s)", m, sample["__key__"], err)
                    continue
                write_atomic(Path(dst) / m / f"{sample['__key__']}{ext}", data)
        n += 1
    bad += ds.unreadable
    return n
