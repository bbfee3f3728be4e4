"""int8 inference (torchao weight-only, and torch's dynamic int8) and bf16 against float32: token agreement and speed.

    python benchmarks/int8.py                       # the shipped world model and a random base-size model
    python benchmarks/int8.py --models world --images 16 --repeats 5

For each model, greedy generation (temperature 0) runs on the same inputs with the float32 model and
with copies quantised by `open4m.model.quantize.quantize_int8` (what `Pipeline(dtype=...)` does):
`int8` (torchao `Int8WeightOnlyConfig`: int8 weights, float32 activations) and `int8-dynamic` (torch's
`quantize_dynamic`: int8 weights and per-batch int8 activations), and `bf16` (the model's weights
in bfloat16: `Pipeline(dtype="bf16")`). Tasks: MaskGIT rgb -> depth tokens
(8 steps) and an autoregressive caption.
Agreement is the share of generated tokens equal to float32's (position by position; a caption that
stops early or late counts its missing positions as different) and the share of images whose whole
output is identical. A greedy MaskGIT run commits its most confident tokens first, so one different
early choice moves the later ones: agreement is a strict measure. Speed: ms per image, the two
models alternating, best of `--repeats`; on a shared machine the times are rough.
Weights MB counts the parameters as stored (int8 data plus scales where quantised).

Models: `world` = the shipped world model (src/open4m/assets/world64: trained, 64 px scenes rendered
by open4m's procedural world); `base` = a random-init 4M-7 SwiGLU no-bias model at base size (768
wide, 12+12 blocks, 224 px), whose near-uniform logits make it the harder case for agreement.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch

WORLD = Path(__file__).resolve().parents[1] / "src" / "open4m" / "assets" / "world64"


def world_case(n: int):
    from open4m.data.synthetic.world import render_world, to_model_form
    from open4m.model import FourM

    model = FourM.from_pretrained(WORLD).eval()
    rgb = torch.stack([to_model_form("rgb", a) for a in render_world("val", n, 64, progress=False).images["rgb"]])
    cond = next(m for m in model.input_modalities if m.startswith("rgb@"))
    depth = next(m for m in model.output_modalities if m.startswith("tok_depth"))
    caption = next(m for m in model.output_modalities if m.endswith("caption"))
    return "world64 (trained)", model, cond, rgb, depth, caption


def base_case(n: int):
    from open4m.modalities import FOURM_7
    from open4m.model import FourM, preset

    torch.manual_seed(0)
    cfg = preset("base-swiglu_nobias", domains_in=list(FOURM_7), domains_out=[m for m in FOURM_7 if m != "rgb@224"],
                 dim=768, encoder_depth=12, decoder_depth=12, num_heads=12)
    rgb = torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return "base (random init)", FourM(cfg).eval(), "rgb@224", rgb, "tok_depth@224", "caption"


def generate(model, cond: str, rgb: torch.Tensor, target: str, steps: int | None, tokens: int | None) -> list:
    """Greedy outputs per image: MaskGIT token grids, or caption ids up to the end token."""
    from open4m.generation import Sampler, build_schedule

    options = {"steps": steps} if steps else {"tokens": tokens}
    schedule = build_schedule(f"{cond}->{target}", temps=0.0, **options)
    sampler = Sampler(model)
    outs = []
    dtype = model.mask_token.dtype  # the pixels in the model's float type (bf16 for a bf16 model)
    for i in range(len(rgb)):
        out = sampler.generate({cond: rgb[i:i + 1].to(dtype)}, schedule)[target]
        outs.append(out["tensor"][0] if steps else out["tensor"][0][~out["input_mask"][0]])
    return outs


def agreement(a: list, b: list) -> tuple[float, float]:
    same = total = 0
    for x, y in zip(a, b):
        n = max(len(x), len(y))
        m = min(len(x), len(y))
        same += int((x[:m] == y[:m]).sum())
        total += n
    return same / max(total, 1), sum(len(x) == len(y) and torch.equal(x, y) for x, y in zip(a, b)) / len(a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="world,base")
    ap.add_argument("--images", type=int, default=8, help="inputs per model (agreement)")
    ap.add_argument("--timed", type=int, default=2, help="of which timed (ms per image)")
    ap.add_argument("--repeats", type=int, default=3, help="timing: best of N, fp32 and int8 alternating")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--caption-tokens", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from open4m.model.quantize import INT8_MODES, quantize_int8

    print(f"torch {torch.__version__}, {args.threads} threads, CPU; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (a shared machine: times are rough)")
    print(f"| {'model':<19} | {'task':<22} | {'dtype':<12} | {'token agreement':>15} | {'identical':>9} | "
          f"{'ms/img':>7} | {'vs fp32':>7} | {'weights MB':>10} |")
    print("|---------------------|------------------------|--------------|-----------------|-----------|---------|"
          "---------|------------|")
    for which in args.models.split(","):
        name, model, cond, rgb, depth, caption = (world_case if which == "world" else base_case)(args.images)
        models = {"fp32": model, **{mode: quantize_int8(copy.deepcopy(model), mode) for mode in INT8_MODES},
                  "bf16": copy.deepcopy(model).to(torch.bfloat16)}
        for task, target, steps, tokens in ((f"MaskGIT rgb->depth 8", depth, 8, None),
                                            (f"caption ({args.caption_tokens} tok)", caption, None,
                                             args.caption_tokens + 1)):
            with torch.inference_mode():
                outs = {label: generate(m, cond, rgb, target, steps, tokens) for label, m in models.items()}
                times = dict.fromkeys(models, float("inf"))
                sample = rgb[:args.timed]
                for _ in range(args.repeats):
                    for label, m in models.items():
                        t0 = time.perf_counter()
                        generate(m, cond, sample, target, steps, tokens)
                        times[label] = min(times[label], (time.perf_counter() - t0) / len(sample))
            for label, m in models.items():
                tok, ident = agreement(outs["fp32"], outs[label])
                print(f"| {name:<19} | {task:<22} | {label:<12} | {tok:>15.3f} | {ident:>9.2f} | "
                      f"{1000 * times[label]:>7.0f} | {times['fp32'] / times[label]:>6.2f}x | {weights_mb(m):>10.0f} |",
                      flush=True)


def weights_mb(model) -> float:
    """MB of the weights as stored: float parameters, torchao int8 data plus scales, and the packed int8
    weights of torch's dynamic quantised linear modules (which are not parameters)."""
    total = 0
    for p in model.parameters():
        inner = [getattr(p, a) for a in ("qdata", "scale") if isinstance(getattr(p, a, None), torch.Tensor)]
        total += sum(t.numel() * t.element_size() for t in inner) if inner else p.numel() * p.element_size()
    for m in model.modules():
        if type(m).__module__.startswith("torch.ao.nn.quantized") and callable(getattr(m, "weight", None)):
            w = m.weight()
            total += w.numel() + w.q_per_channel_scales().numel() * 8 if w.qscheme() in (
                torch.per_channel_affine, torch.per_channel_symmetric) else w.numel() + 8
    return total / 2**20


if __name__ == "__main__":
    main()
