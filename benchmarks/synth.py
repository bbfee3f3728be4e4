"""Throughput of the procedural world: scenes/s for render only, full samples (with labelers) and
writing to disk, on 1 and 2 worker processes. Prints a table.

Wall-clock scenes/s depends on what else the cores run; `scenes/CPU-s` (scenes per second of CPU time
used by the workers) does not, and x2 gives the capacity of 2 dedicated cores.

    python benchmarks/synth.py --sizes 64 128 --n 200
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from multiprocessing import get_context

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _work(task: tuple[str, int, int, int, str]) -> tuple[int, float]:
    mode, start, count, size, out = task
    from open4m.data.synthetic import generate_sample, render, sample_scene, seed_for, write_dataset

    cpu0 = time.process_time()
    if mode == "render":
        for i in range(start, start + count):
            render(sample_scene(seed_for("train", i)), size)
    elif mode == "sample":
        for i in range(start, start + count):
            generate_sample(seed_for("train", i), size)
    else:
        write_dataset(out, count, size=size, start=start, progress=False)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - cpu0


def measure(mode: str, size: int, n: int, workers: int) -> tuple[float, float, float]:
    """(scenes per wall second, scenes per CPU second, peak RSS MiB of one worker)."""
    with tempfile.TemporaryDirectory() as out, get_context("spawn").Pool(workers) as pool:
        pool.map(_work, [(mode, 10**6 + w, 2, size, out) for w in range(workers)])  # warm-up imports
        per = n // workers
        t0 = time.perf_counter()
        res = pool.map(_work, [(mode, w * per, per, size, out) for w in range(workers)])
        dt = time.perf_counter() - t0
    cpu = sum(c for _, c in res)
    return per * workers / dt, per * workers / cpu, max(r for r, _ in res) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--n", type=int, default=200, help="scenes per measurement")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", default=["render", "sample", "write"], choices=["render", "sample", "write"])
    args = ap.parse_args()
    print(f"# open4m synth benchmark — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"{args.n} scenes per row, seeds from the train split")
    print(f"| {'mode':<7}| {'size':>5} | {'workers':>7} | {'scenes/s':>9} | {'scenes/CPU-s':>12} | {'peak RSS MiB':>12} |")
    print("|--------|-------|---------|-----------|--------------|--------------|")
    for mode in args.modes:
        for size in args.sizes:
            for workers in args.workers:
                rate, cpu_rate, rss = measure(mode, size, args.n, workers)
                print(f"| {mode:<7}| {size:>5} | {workers:>7} | {rate:>9.1f} | {cpu_rate:>12.1f} | {rss:>12.0f} |",
                      flush=True)
    print("render = ray casting only; sample = + captions, boxes, Canny, palette, metadata; write = + PNG/JSON files")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores: above 2 means the workers shared them)")


if __name__ == "__main__":
    main()
