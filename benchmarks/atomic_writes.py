"""Many files into one folder through `open4m.atomic.write_atomic`: is the cost per file flat?

Token folders, pseudo-label folders and tokenized datasets put tens of thousands of small files in one folder.
Each write sweeps the temporary files killed writers left; listing the folder for that at every write made n
writes cost n^2 (a 24000-scene token folder slowed to 15 files/s per modality). The table gives files/s in each
quarter of the run (flat means linear), and beside it the same writes with the folder listed at every write,
which is what that cost.

    python benchmarks/atomic_writes.py [--files 8000] [--bytes 200] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import glob
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from open4m.atomic import write_atomic


def quarters(folder: Path, files: int, size: int, list_each_write: bool) -> list[float]:
    """Files per second in each quarter of `files` writes into `folder`."""
    payload, rates, start = b"x" * size, [], time.perf_counter()
    bounds = [files * q // 4 for q in range(1, 5)]
    for i in range(files):
        target = folder / f"scene_{i:08d}.npy"
        if list_each_write:
            list(folder.glob(f".{glob.escape(target.name)}.*-*.tmp"))
        write_atomic(target, payload)
        if i + 1 in bounds:
            now = time.perf_counter()
            rates.append(files / 4 / (now - start))
            start = now
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--bytes", type=int, default=200)
    parser.add_argument("--dir", default=None, help="where the folders go (default: the system temp folder)")
    args = parser.parse_args()
    print(f"config: files={args.files} bytes={args.bytes} python={platform.python_version()} "
          f"dir={args.dir or tempfile.gettempdir()}")
    print(f"{'writes':<28}" + "".join(f"{f'q{q} files/s':>14}" for q in range(1, 5)) + f"{'total s':>10}")
    for label, listing in (("write_atomic", False), ("+ folder listed each write", True)):
        folder = Path(tempfile.mkdtemp(dir=args.dir))
        try:
            rates = quarters(folder, args.files, args.bytes, listing)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        total = sum(args.files / 4 / r for r in rates)
        print(f"{label:<28}" + "".join(f"{r:>14.0f}" for r in rates) + f"{total:>10.1f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
