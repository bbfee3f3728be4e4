"""One FourM optimizer step (forward + backward + AdamW), 4M-7 modalities, masked as training draws them.

Each configuration runs in its own process so peak memory (max RSS) is its own. Prints a table.

    python benchmarks/train_step.py                       # tiny + base, fp32, 2 threads
    python benchmarks/train_step.py --sizes tiny --steps 10 --configs open4m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIZES = {
    "tiny": dict(dim=256, encoder_depth=4, decoder_depth=4, num_heads=4),
    "base": dict(dim=768, encoder_depth=12, decoder_depth=12, num_heads=12),
}
# Official figures on this machine class (2 cores, fp32, torch 2.13, SwiGLU no-bias): see issue 2.
OFFICIAL_MS = {"tiny": 685.0, "base": 10013.0}
# (fused AdamW, row-sparse embedding gradients)
CONFIGS = {"open4m": (True, True), "reference-like": (False, False)}


def make_batches(n: int, batch_size: int, seed: int = 0):
    """Random 4M-7 samples masked with the official 4M-7 mixture, 128 input / 128 target tokens."""
    import numpy as np
    import torch

    from open4m.data.masking import FOURM_7_MIXTURE, DirichletMasking, collate

    masker = DirichletMasking(FOURM_7_MIXTURE, 128, 128)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)

    def sample():
        out = {"rgb@224": torch.randn(3, 224, 224, generator=g)}
        for name, vocab in (("tok_rgb@224", 16384), ("tok_depth@224", 8192), ("tok_normal@224", 8192),
                            ("tok_semseg@224", 4096), ("tok_clip@224", 8192)):
            out[name] = torch.randint(0, vocab, (196,), generator=g)
        out["caption"] = torch.randint(4300, 30000, (int(rng.integers(8, 40)),), generator=g)
        out["det"] = [torch.randint(204, 4300, (5,), generator=g).tolist() for _ in range(int(rng.integers(1, 8)))]
        return out

    return [collate([masker(sample(), rng) for _ in range(batch_size)]) for _ in range(n)]


def run_one(size: str, steps: int, warmup: int, batch_size: int, fused: bool, threads: int, sparse: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    from open4m.model import FourM, FourMConfig, preset
    from open4m.modalities import FOURM_7
    from open4m.train.optim import SparseGradientDensifier, build_adamw, parameter_groups

    cfg = preset("base-swiglu_nobias", domains_in=list(FOURM_7), domains_out=[m for m in FOURM_7 if m != "rgb@224"],
                 **SIZES[size])
    torch.manual_seed(0)
    model = FourM(cfg).train()
    opt = build_adamw(parameter_groups(model, 0.05), lr=1e-4, fused=fused)
    model.set_sparse_embedding_gradients(sparse)
    densify = SparseGradientDensifier()
    batches = make_batches(warmup + steps, batch_size)
    times = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        loss, _ = model(batch, 128, 128, validate=False)
        loss.backward()
        densify(model)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    ms = 1000 * sorted(times)[len(times) // 2]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in model.parameters())
    return dict(size=size, ms=ms, samples_s=batch_size / (ms / 1000), peak_mb=peak_mb, params_m=params / 1e6,
                fused=fused, sparse=sparse, threads=threads, batch=batch_size, torch=torch.__version__)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                   help="open4m: fused AdamW + row-sparse embedding gradients; reference-like: the reference "
                        "implementation's plain for-loop AdamW and dense (vocab x dim) embedding gradients")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--config", default="open4m", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fused, sparse = CONFIGS[args.config]
        print(json.dumps(run_one(args.child, args.steps, args.warmup, args.batch_size, fused, args.threads, sparse)))
        return
    rows = []
    for size in args.sizes:
        for config in args.configs:
            cmd = [sys.executable, __file__, "--child", size, "--config", config, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "config": config})
    print(f"FourM train step: 4M-7 modalities, SwiGLU no-bias, batch {args.batch_size}, 128 in / 128 out tokens, "
          f"fp32 CPU, {args.threads} threads, median of {args.steps} steps, torch {rows[0]['torch']}")
    header = (f"{'size':<6}{'config':<16}{'params':>9}{'ms/step':>10}{'samples/s':>11}{'peak MB':>9}"
              f"{'vs ref-like':>13}{'issue ms':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        base = next((b for b in rows if b["size"] == r["size"] and b["config"] == "reference-like"), None)
        ratio = f"{base['ms'] / r['ms']:.2f}x" if base else "-"
        print(f"{r['size']:<6}{r['config']:<16}{r['params_m']:>8.1f}M{r['ms']:>10.0f}{r['samples_s']:>11.2f}"
              f"{r['peak_mb']:>9.0f}{ratio:>13}{OFFICIAL_MS[r['size']]:>10.0f}")
    print("issue ms: the official implementation as measured for the issue on this machine class (another CPU of "
          "the pool may differ; compare the in-process 'vs ref-like' ratio first)")

if __name__ == "__main__":
    main()
