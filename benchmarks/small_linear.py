"""Few-row matrix products on the CPU: torch.nn.functional.linear (x @ Wᵀ) vs W @ xᵀ vs open4m's Linear.

Why this exists: cached autoregressive decoding and speculative verification push 1-64 rows
through every weight of the decoder. The weights (about 400 MB at base size) do not fit in any
cache, so the products should run at memory bandwidth. This script sweeps the row count over the
weights of a base-size 4M decoder (12 x [qkv 768x2304, fc1 and fc3 768x2048, fc2 2048x768, proj
768x768]) and prints ms per sweep, effective GB/s and GFLOP/s per formulation.
`open4m.model.layers.Linear` switches to W @ xᵀ up to `SMALL_ROWS` rows.

    python benchmarks/small_linear.py [--threads 2] [--rows 1,2,4,8,16,32,64,128,256]
"""

from __future__ import annotations

import argparse
import os
import re
import time

import torch
import torch.nn.functional as F

SHAPES = [(2304, 768), (2048, 768), (2048, 768), (768, 2048), (768, 768)]  # one decoder block, (out, in)


def best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> None:
    from open4m.model.layers import SMALL_ROWS, Linear

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=12, help="decoder blocks' worth of weights to sweep")
    ap.add_argument("--rows", default="1,2,4,8,16,32,64,128,256")
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers = [Linear(i, o, bias=False).requires_grad_(False) for _ in range(args.blocks) for o, i in SHAPES]
    weight_bytes = sum(layer.weight.numel() * 4 for layer in layers)
    params = weight_bytes / 4
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, {len(layers)} weights = {weight_bytes / 1e6:.0f} MB, "
          f"load average {os.getloadavg()[0]:.1f}; open4m Linear uses W @ xT up to {SMALL_ROWS} rows")
    print(f"{'rows':>5} {'x @ WT ms':>10} {'W @ xT ms':>10} {'Linear ms':>10} {'gain':>6} {'GB/s (best)':>12} {'GFLOP/s (best)':>15}")
    for rows in (int(r) for r in args.rows.split(",")):
        inputs = {i: torch.randn(rows, i) for _, i in SHAPES}
        plain = best_ms(lambda: [F.linear(inputs[m.in_features], m.weight) for m in layers], args.repeats)
        flipped = best_ms(lambda: [(m.weight @ inputs[m.in_features].t()).t() for m in layers], args.repeats)
        ours = best_ms(lambda: [m(inputs[m.in_features]) for m in layers], args.repeats)
        best = min(plain, flipped, ours) / 1e3
        print(f"{rows:>5} {plain:>10.1f} {flipped:>10.1f} {ours:>10.1f} {plain / ours:>5.2f}x "
              f"{weight_bytes / best / 1e9:>12.1f} {2 * rows * params / best / 1e9:>15.1f}")
    peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
