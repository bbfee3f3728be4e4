"""Handing memory that training freed back to the operating system (glibc's ``malloc_trim``).

Why: on the CPU every tensor comes from the C allocator. A training step frees gigabytes of
activations and gradients in an order unlike the one it allocated them in, and glibc keeps the
holes this leaves inside its heap as resident memory. At base 4M-7 size the holes reach 1-2 GB,
as much as the activations themselves, and the process's peak resident memory is what a user
sees and what runs out. ``malloc_trim(0)`` returns the free pages of those holes; calling it
once after the forward pass and once after the update costs a few milliseconds plus the page
faults of touching that memory again. Elsewhere (macOS, Windows, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from functools import lru_cache
from typing import Callable

__all__ = ["release_free_memory", "can_release_memory"]

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to call
        logger.debug("malloc_trim is not available; freed memory stays with the allocator")
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def can_release_memory() -> bool:
    """Whether :func:`release_free_memory` does anything on this system."""
    return _malloc_trim() is not None


def release_free_memory() -> None:
    """Return the C heap's free pages to the operating system (Linux with glibc; elsewhere nothing)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
