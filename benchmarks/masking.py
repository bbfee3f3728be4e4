"""Per-sample masking throughput of the official 4M-7 and 4M-21 recipes (CPU, one thread).

Masking runs in data-loader workers once per sample, so its cost per sample bounds how many
workers a training run needs. Prints a table: recipe, budgets, µs per sample, samples/s, collate
cost for a batch, and the process's peak resident memory.

    python benchmarks/masking.py [--samples 2000] [--batch 64]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import torch

from open4m import modalities
from open4m.data.masking import OFFICIAL_MIXTURES, DirichletMasking, collate


def synthetic_sample(names: tuple[str, ...]) -> dict:
    """Realistic sizes: a 20-word caption, 6 boxes, 10 metadata pairs, a 5-colour palette."""
    g = torch.Generator().manual_seed(0)
    sample: dict = {}
    for name in names:
        mod = modalities.get(name)
        if mod.kind is modalities.Kind.PIXELS:
            sample[name] = torch.randn(3, 224, 224, generator=g)
        elif mod.kind is modalities.Kind.IMAGE_TOKENS:
            sample[name] = torch.randint(0, mod.vocab_size, (mod.num_tokens(),), generator=g)
        elif mod.kind is modalities.Kind.SEQUENCE_EMBEDDING:
            sample[name] = torch.randn(20, 4096, generator=g)
        elif name == "det":
            sample[name] = [[204 + i, 1204 + i, 2204 + i, 3204 + i, 5000 + i] for i in range(6)]
        elif name == "metadata":
            sample[name] = [[1204 + i, 204 + 7 * i] for i in range(10)]
        elif name == "color_palette":
            sample[name] = [1209] + [204 + i for i in range(15)]
        else:
            sample[name] = list(range(5000, 5000 + min(20 if name == "caption" else 60, mod.max_tokens - 1)))
    return sample


def bench(recipe: str, preset: str, budget: int, n: int, batch: int) -> tuple:
    masker = DirichletMasking(OFFICIAL_MIXTURES[recipe], budget, budget)
    sample = synthetic_sample(modalities.PRESETS[preset])
    rng = np.random.default_rng(0)
    for _ in range(20):  # warm-up
        masker(sample, rng)
    start = time.perf_counter()
    for _ in range(n):
        masker(sample, rng)
    per_sample = (time.perf_counter() - start) / n
    masked = [masker(sample, rng) for _ in range(batch)]
    start = time.perf_counter()
    reps = 20
    for _ in range(reps):
        collate(masked)
    per_collate = (time.perf_counter() - start) / reps
    return recipe, f"{budget}/{budget}", per_sample * 1e6, 1 / per_sample, per_collate * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [
        bench("4m-7", "4M-7", 128, args.samples, args.batch),
        bench("4m-7-capbias", "4M-7", 128, args.samples, args.batch),
        bench("4m-21", "4M-21", 256, args.samples, args.batch),
    ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# masking throughput — {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"numpy {np.__version__}, 1 thread, {args.samples} samples, collate batch {args.batch}")
    print("| recipe | input/target tokens | µs / sample | samples / s | collate ms / batch |")
    print("| --- | --- | ---: | ---: | ---: |")
    for recipe, budgets, us, sps, coll in rows:
        print(f"| {recipe} | {budgets} | {us:,.0f} | {sps:,.0f} | {coll:.1f} |")
    print(f"peak resident memory: {peak_mb:,.0f} MiB")


if __name__ == "__main__":
    main()
