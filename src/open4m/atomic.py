"""Atomic file writes: a temporary file beside the target, then one rename.

An interrupted run (Ctrl-C, SIGKILL, a full disk) therefore leaves either the old file or the new
one, never a torn one — checkpoints, datasets, tokens and reports all go through here. The
temporary name is unique per process and call, so concurrent writers never share one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

from .errors import OutputExists


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, overwrite: bool = True) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it onto `path`.

    With `overwrite=False` an existing `path` is an error (nothing a user saved is replaced).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExists(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # some writers (safetensors) create 0600 files; files get the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Bytes to `path`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Text (UTF-8) to `path`, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite)
