"""Every file open4m writes goes through here: atomic, durable, and never over a user's files by surprise.

- **Atomic**: the bytes go to a temporary file beside the target, then one ``os.replace`` moves it onto
  the target. An interrupted run (Ctrl-C, SIGKILL, a full disk) leaves either the old file or the new
  one, never a torn one. The temporary name (``.NAME.PID-RANDOM.tmp``) is unique per process and call,
  so concurrent writers never share one; a failed write removes it, and one a killed process left is
  removed by the next write of the same file (from a folder listed once per process, so writing many
  files into one folder stays linear).
- **Durable**: the temporary file is fsynced before the rename and its folder after it, so after a
  power cut the target is the old file or the complete new one, never an empty or partial one (a
  rename can otherwise reach the disk before the data it names). Whole folders written under a
  temporary name (training checkpoints) get the same through :func:`commit_dir`.
- **Never replaces a user's files**: :func:`check_output` is the one place that decides whether a
  command may write to an output path (the ``--overwrite`` rule of every verb), before any work.

Streaming writers that produce one file over a long time (webdataset shards, the tar of a token
shard) write through :func:`staged_file`. The only writes that bypass this module are the ones a
test (``tests/test_atomic.py``) allow-lists with the reason: an append-only log, files of third-party
loggers, and the ``.part`` of a download that is checked before :func:`atomic_write` publishes it.

This module imports nothing from open4m but its errors (it sits at the bottom of the package).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import Callable, Iterator

from .errors import ConfigError, OutputExists

__all__ = ["atomic_write", "write_atomic", "write_text_atomic", "save_image", "staged_file", "commit_dir",
           "fsync_dir", "fsync_file", "check_output", "sweep_stale_temps"]


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to the disk (read-only descriptor: fsync needs no write access on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename or a new file in it) to the disk; a no-op where folders cannot be
    opened (Windows), whose renames are durable through the file system's own journal."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (PermissionError, IsADirectoryError):  # Windows: folders are not opened like files
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows) refuse fsync on a folder: nothing more can be done
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process (or a platform without signals): keep its file
        return True
    return True


#: Per folder, the temporary files that dead writers left there, by the name of the file each was for. A folder
#: is listed once per process: listing it at every write made writing n files into one folder cost n^2 (a
#: 48000-scene token folder: hours). A writer killed after that listing leaves its file for the next process.
_STALE: dict[str, dict[str, list[Path]]] = {}
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def _stale_temps(folder: Path) -> dict[str, list[Path]]:
    key = os.path.abspath(folder)
    if key not in _STALE:
        found: dict[str, list[Path]] = {}
        with os.scandir(folder) as entries:
            for entry in entries:
                match = _TEMP.match(entry.name)
                if match is not None and int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                    found.setdefault(match["name"], []).append(Path(folder) / entry.name)
        _STALE[key] = found
    return _STALE[key]


def sweep_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of `path` that a killed process left (``.NAME.PID-RANDOM.tmp`` whose PID is
    no longer running); a live writer's file is left alone. Called before each write of `path`."""
    path = Path(path)
    removed = sorted(_stale_temps(path.parent).pop(path.name, []))
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def staged_file(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """``with staged_file(target) as tmp:`` write `tmp` however you like (a streaming writer kept open
    for minutes, a library that only takes a file name); on a clean exit it is fsynced and renamed onto
    `target`, on an exception removed. With `overwrite=False` an existing `target` is an error."""
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExists(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # some writers (safetensors) create 0600 files; files get the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, overwrite: bool = True) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it onto `path` (fsynced, see the module).

    With `overwrite=False` an existing `path` is an error (nothing a user saved is replaced).
    """
    with staged_file(path, overwrite=overwrite) as tmp:
        write(tmp)
    return Path(path)


def write_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Bytes to `path`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Text (UTF-8) to `path`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite)


def save_image(image, path: str | os.PathLike, *, overwrite: bool = True, **params) -> Path:
    """A PIL image to `path` (format from the suffix, as ``Image.save`` picks it), atomically."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: no image format for the suffix {path.suffix!r}; use .png or .jpg")
    return atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **params), overwrite=overwrite)


def commit_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Publish a folder written under the temporary name `tmp` as `final` (which must not exist): every
    file in it is fsynced, then one rename, then the parent folder is fsynced. A run killed at any
    moment leaves either no `final` or the complete one."""
    tmp, final = Path(tmp), Path(final)
    for folder, _, files in os.walk(tmp):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(folder)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


# -- outputs: the --overwrite rule ------------------------------------------------------------------------
def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is a file (an output "inside a file"), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _writable_folder(path: Path) -> Path:
    """The folder a new output at `path` is created in: `path` itself when it is a folder, else its
    nearest existing ancestor."""
    if path.is_dir():
        return path
    return next((p for p in path.parents if p.exists()), Path.cwd())


def check_output(path: str | os.PathLike, *, folder: bool, overwrite: bool, flag: str = "--out",
                 ours: Callable[[Path], bool] | None = None) -> Path:
    """Decide, before any work, whether a command may write its output at `path`; return it as a Path.

    Refused with a one-line error naming the fix (``OutputExists`` / ``ConfigError``):
    - an output below a regular file (``--out notes.txt/run``);
    - a regular file where a folder is expected, or a folder where a file is (``--overwrite`` never
      turns one into the other: a user's file or folder is never deleted);
    - an existing file, or a folder that holds files, unless `overwrite` — or unless ``ours(path)`` says the
      folder is this command's own earlier output that it continues (a training run folder resumes);
    - a location the user cannot write to.
    With `overwrite`, a command writes its files into the folder, replacing only files of the same names
    (its own outputs); nothing else there is touched.
    """
    path = Path(path)
    above = _file_above(path)
    if above is not None:
        raise ConfigError(f"{flag} {path}: {above} is a file, not a folder; choose an output path in a folder")
    if path.exists():
        if folder and not path.is_dir():
            raise OutputExists(f"{flag} {path} is a file where a folder is expected; choose another {flag} "
                               "(--overwrite never replaces a file with a folder)")
        if not folder and path.is_dir():
            raise OutputExists(f"{flag} {path} is a folder where a file is expected; name a file inside it or "
                               f"choose another {flag}")
        if not folder and not overwrite:
            raise OutputExists(f"{flag} {path} exists; choose another {flag} or pass --overwrite to replace it")
        if folder and not overwrite and any(path.iterdir()) and not (ours is not None and ours(path)):
            raise OutputExists(f"{flag} {path} already holds files; choose a new or empty folder, or pass "
                               "--overwrite to write into it (only files open4m writes are replaced)")
    where = _writable_folder(path)
    if not os.access(where, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {where} is not writable (permission denied); choose a folder you can "
                          f"write to for {flag}")
    return path
