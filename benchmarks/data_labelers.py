"""Throughput of the built-in pseudo-labelers and of folder/shard reading, on procedural scenes.

    python benchmarks/data_labelers.py --size 256 --n 100

Prints images/s per labeler (one process, one thread) and samples/s for decoding a folder
dataset and streaming the same data from shards.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()

    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from open4m.data.formats import FolderDataset, ShardDataset, folder_to_shards
    from open4m.data.labelers import CannyEdges, ColorPalette, ImageMetadata, InstanceEdges
    from open4m.data.labelers.network import NormalLabeler
    from open4m.data.synthetic import generate_sample, write_dataset

    print(f"# open4m labeler benchmark — {platform.machine()}, 1 process, 1 thread, {args.n} images per row")
    print(f"| {'stage':<28}| {'size':>5} | {'items/s':>9} | {'ms/item':>8} |")
    print("|-----------------------------|-------|-----------|----------|")

    def row(stage: str, size: int, fn, items) -> None:
        fn(items[0])
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        dt = time.perf_counter() - t0
        print(f"| {stage:<28}| {size:>5} | {len(items) / dt:>9.1f} | {1000 * dt / len(items):>8.2f} |", flush=True)

    for size in args.size:
        samples = [generate_sample(i, size, labels=False) for i in range(args.n)]
        for labeler in (CannyEdges(), InstanceEdges(), ColorPalette(), ImageMetadata(), NormalLabeler(fov_deg=50)):
            row(f"label {labeler.name}", size, labeler, samples)
        with tempfile.TemporaryDirectory() as tmp:
            write_dataset(f"{tmp}/w", args.n, size=size, progress=False)
            ds = FolderDataset(f"{tmp}/w")
            row("read folder (all modalities)", size, lambda i: ds[i], list(range(len(ds))))
            folder_to_shards(f"{tmp}/w", f"{tmp}/s", samples_per_shard=50, progress=False)
            sd = ShardDataset(f"{tmp}/s", ds.modalities)
            t0 = time.perf_counter()
            n = sum(1 for _ in sd)
            dt = time.perf_counter() - t0
            print(f"| {'stream shards (all mods)':<28}| {size:>5} | {n / dt:>9.1f} | {1000 * dt / n:>8.2f} |")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
