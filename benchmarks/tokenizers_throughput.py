"""Encode / decode throughput and peak memory of every tokenizer kind on CPU. Prints a table.

Each configuration runs in its own process so its peak memory (max RSS) is its own. Weights are
random (speed does not depend on them); sizes are the official ones (`--size official`: ViT-B/16
encoders and decoders at 224x224, the 6-block 1024-wide MLP of the global tokenizers) or a tiny
set for a quick check. DiVAE decoding is reported per image for 25 and 50 denoising steps.

    python benchmarks/tokenizers_throughput.py                      # official sizes, batch 16, 2 threads
    python benchmarks/tokenizers_throughput.py --size tiny --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

KINDS = ("rgb_vqvae", "semseg_vqvae", "clip_vqvae", "global_mlp", "divae")


def model_config(kind: str, size: str) -> tuple[str, dict]:
    vit = {"enc_type": "vit_b_enc", "dec_type": "vit_b_dec"} if size == "official" else \
          {"enc_type": "vit_t_enc", "dec_type": "vit_t_dec"}
    if kind == "rgb_vqvae":
        return "vqvae", dict(vit, image_size=224, n_channels=3, codebook_size=16384, post_mlp=True)
    if kind == "semseg_vqvae":
        return "vqvae", dict(vit, image_size=224, n_channels=64, n_labels=134, codebook_size=4096, post_mlp=True)
    if kind == "clip_vqvae":  # a 14x14 map of 512-d CLIP-B/16 features, 1x1 "patches"
        return "vqvae", dict(vit, image_size=224, n_channels=512, patch_proj=False, codebook_size=8192, post_mlp=True)
    if kind == "global_mlp":
        mlp = "BottleneckMLP/B_6-Wi_1024" if size == "official" else "BottleneckMLP/B_2-Wi_128"
        return "mlp", dict(image_size=1, patch_size=1, n_channels=768, enc_type=mlp, dec_type=mlp, quant_type="memcodes",
                           num_codebooks=16, codebook_size=8192, latent_dim=1024 if size == "official" else 128)
    return "divae", dict(image_size=224, n_channels=3, enc_type=vit["enc_type"], codebook_size=16384, post_mlp=True,
                         dec_channels=64 if size == "official" else 16)


def make_input(kind: str, batch: int):
    import torch

    g = torch.Generator().manual_seed(0)
    if kind == "semseg_vqvae":
        return torch.randint(0, 134, (batch, 224, 224), generator=g)
    if kind == "clip_vqvae":
        return torch.randn(batch, 512, 14, 14, generator=g)
    if kind == "global_mlp":
        return torch.randn(batch, 768, generator=g)
    return torch.rand(batch, 3, 224, 224, generator=g) * 2 - 1


def timed(fn, iters: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def run_one(kind: str, size: str, batch: int, iters: int, threads: int) -> dict:
    import torch

    from open4m.train.tasks.tokenizer import build_tokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tk, cfg = model_config(kind, size)
    model = build_tokenizer(tk, cfg).eval()
    x = make_input(kind, batch)
    with torch.inference_mode():
        tokens = model.encode(x)
        enc_s = timed(lambda: model.encode(x), iters)
        row = {"kind": kind, "size": size, "batch": batch, "tokens/sample": tokens[0].numel(),
               "params_M": sum(p.numel() for p in model.parameters()) / 1e6, "encode_per_s": batch / enc_s}
        if tk == "divae":
            one = tokens[:1]
            for steps in (25, 50):
                row[f"decode_s_per_img_{steps}"] = timed(lambda: model.decode(one, steps=steps, seed=0), 1)
        else:
            row["decode_per_s"] = batch / timed(lambda: model.decode(tokens), iters)
    row["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--size", choices=["official", "tiny"], default="official")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_one(args.worker, args.size, args.batch_size, args.iters, args.threads)))
        return
    rows = []
    for kind in args.kinds:
        cmd = [sys.executable, __file__, "--worker", kind, "--size", args.size, "--batch-size", str(args.batch_size),
               "--iters", str(args.iters), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"tokenizers on CPU, {args.threads} threads, batch {args.batch_size}, fp32, torch inference mode, size={args.size}")
    header = ["kind", "params_M", "tokens/sample", "encode img/s", "decode img/s", "DiVAE s/img 25 st", "50 st", "peak RSS MB"]
    lines = [header]
    for r in rows:
        lines.append([r["kind"], f"{r['params_M']:.1f}", str(r["tokens/sample"]), f"{r['encode_per_s']:.1f}",
                      f"{r['decode_per_s']:.1f}" if "decode_per_s" in r else "-",
                      f"{r['decode_s_per_img_25']:.2f}" if "decode_s_per_img_25" in r else "-",
                      f"{r['decode_s_per_img_50']:.2f}" if "decode_s_per_img_50" in r else "-", f"{r['peak_rss_MB']:.0f}"])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    for i, row in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
