"""Throughput of full FourM training steps, data loading and masking included (`open4m.train.train`).

Each configuration runs `train()` for a few steps in its own process (so peak memory is its own)
on synthetic 4M-7 samples with 128 input + 128 target tokens, then reports the median tokens/s of
the steps after warm-up, peak memory, and on CUDA the model FLOPs utilisation (6 x transformer
parameters x tokens, attention scores ignored, against the bf16 dense peak in --peak-tflops).

    python benchmarks/train_throughput.py                          # CPU: tiny and base, fp32
    python benchmarks/train_throughput.py --device cuda --sizes base large --precision bf16 --compile both
    python benchmarks/train_throughput.py --device cuda --sizes base large --compile on --attention sdpa flex

`--attention` compares the attention backends (`model.attention`: SDPA with additive masks, or
FlexAttention with block masks); flex trains on CUDA only, so the CPU skips it with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

MODS = ["rgb@224", "caption", "det", "tok_rgb@224", "tok_depth@224", "tok_normal@224", "tok_semseg@224", "tok_clip@224"]


def run_one(size: str, device: str, precision: str, compile_: bool, batch: int, steps: int, threads: int,
            attention: str = "sdpa") -> dict:
    import torch

    from open4m.config import from_dict
    from open4m.train.tasks.fourm import FourMRecipe, train

    out = tempfile.mkdtemp(prefix="open4m-bench-")
    cfg = from_dict(FourMRecipe, {
        "model": {"preset": f"{size}-swiglu_nobias", "attention": attention},
        "data": {"modalities": MODS, "mixture": "4m-7", "batch_size": batch, "num_samples": batch * (steps + 1),
                 "num_workers": 2 if device != "cpu" else 0},
        "optim": {"blr": 1e-4},
        "train": {"steps": steps, "out_dir": out, "device": device, "precision": precision, "threads": threads,
                  "compile": compile_,
                  "save_every": 10**9, "eval_every": 0, "eval_batches": 0},
        "log": {"every": 1, "progress": False, "tensorboard": False},
    })
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = train(cfg)
    rates = [r["train/tokens_per_s"] for r in result.metrics if "train/tokens_per_s" in r][2:]  # skip warm-up
    rate = sorted(rates)[len(rates) // 2]
    from open4m.model import FourM

    model = FourM.from_pretrained(result.model_path)
    enc = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("encoder.", "encoder_norm")))
    dec = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("decoder.", "decoder_norm", "decoder_proj")))
    flops_per_token = 6 * (enc + dec) / 2  # half the tokens pass the encoder, half the decoder (128 + 128)
    row = dict(size=size, device=device, precision=precision, compile=compile_, attention=attention, batch=batch,
               threads=threads,
               tokens_s=rate, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
               tflops=rate * flops_per_token / 1e12)
    if device.startswith("cuda"):
        row["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "base"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default=None, help="default: fp32 on CPU, bf16 on CUDA")
    ap.add_argument("--compile", choices=("off", "on", "both"), default="off")
    ap.add_argument("--attention", nargs="+", choices=("sdpa", "flex"), default=["sdpa"],
                    help="attention backends to compare (flex: CUDA only)")
    ap.add_argument("--batch", type=int, default=None, help="default: 8 on CPU, 128 on CUDA")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator dense bf16 peak (H100 SXM: 989)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(**json.loads(args.one))))
        return
    cuda = args.device.startswith("cuda")
    precision = args.precision or ("bf16" if cuda else "fp32")
    batch = args.batch or (128 if cuda else 8)
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    import torch

    from open4m.errors import ConfigError
    from open4m.model.flex import check_training_device

    attentions = []
    for attention in args.attention:
        try:
            check_training_device(attention, torch.device(args.device))
            attentions.append(attention)
        except ConfigError as err:
            print(f"skipped: {err}", file=sys.stderr)
    rows = []
    for size, comp, attention in ((s, c, a) for s in args.sizes for c in compiles for a in attentions):
        spec = dict(size=size, device=args.device, precision=precision, compile_=comp, batch=batch,
                    steps=args.steps, threads=args.threads, attention=attention)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True,
                              text=True, env=env)
        line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{size} compile={comp} attention={attention} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[7:]))
    header = f"{'size':6} {'device':7} {'prec':5} {'compile':7} {'attn':5} {'batch':>5} {'params M':>9} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6} {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        mfu = f"{100 * r['tflops'] / args.peak_tflops:5.1f}%" if cuda else "-"
        print(f"{r['size']:6} {r['device']:7} {r['precision']:5} {str(r['compile']):7} {r['attention']:5} {r['batch']:>5} "
              f"{r['params_m']:>9.1f} {r['tokens_s']:>10,.0f} {r['tflops']:>8.3f} {mfu:>6} {r['peak_mb']:>8.0f}")
    print(f"(threads={args.threads}, steps={args.steps}, 128 input + 128 target tokens per sample, synthetic 4M-7 data)")


if __name__ == "__main__":
    main()
