"""MaskGIT steps eager vs compiled (`Sampler(model, compile=True)`): ms per step, compile time, same tokens.

A random-init 4M-7 SwiGLU no-bias model (tiny: 256 wide, 4+4 layers), fp32 CPU, RGB -> tok_depth with
a seeded generator at temperature 1 and greedy (temperature 0). The compiled sampler runs every
MaskGIT step as one static-shape graph (open4m.generation.static_step); the first generation pays the
compilation and is reported apart; the timed generations reuse the graph. The script checks that both
samplers produce the same tokens. Times are per step, best of the alternating runs: wall time, and
the process's CPU time, which other jobs on a shared machine barely move (use --threads 1 for it: idle
OpenMP threads spin).

    python benchmarks/compiled_sampler.py                       # tiny, 8 steps, with and without guidance
    python benchmarks/compiled_sampler.py --dim 64 --depth 1 --steps 4 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import torch


def build(dim: int, depth: int, heads: int):
    from open4m.model import FourM, preset

    mods = ["rgb@224", "tok_depth@224", "tok_normal@224", "caption"]
    torch.manual_seed(0)
    cfg = preset("tiny-swiglu_nobias", domains_in=mods, domains_out=mods[1:], dim=dim, encoder_depth=depth,
                 decoder_depth=depth, num_heads=heads)
    return FourM(cfg).eval()


def timed(samplers: dict, rgb, schedule, repeats: int) -> dict[str, tuple[float, float, torch.Tensor]]:
    """Per sampler: best-of-`repeats` wall ms and CPU ms per step (runs alternating, so load hits all alike; the
    process's CPU time barely moves with other jobs on the machine), and the tokens."""
    best = {name: (float("inf"), float("inf"), None) for name in samplers}
    for _ in range(repeats):
        for name, sampler in samplers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            out = sampler.generate({"rgb@224": rgb}, schedule, generator=torch.Generator().manual_seed(0))
            wall, cpu = [(time.perf_counter() - wall) * 1000 / len(schedule),
                         (time.process_time() - cpu) * 1000 / len(schedule)]
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu), out["tok_depth@224"]["tensor"])
    return best


def measure(model, *, steps: int, cfgs: tuple[float, ...], temps: tuple[float, ...], repeats: int,
            backend: str) -> list[dict]:
    from open4m.generation import Sampler, build_schedule

    rgb = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    rows = []
    for cfg in cfgs:
        for temperature in temps:
            schedule = build_schedule("rgb@224->tok_depth@224", steps=steps, temps=temperature, cfg=cfg)
            eager = Sampler(model)
            compiled = Sampler(model, compile=backend)
            start = time.perf_counter()
            compiled.generate({"rgb@224": rgb}, schedule, generator=torch.Generator().manual_seed(0))
            first = time.perf_counter() - start
            eager.generate({"rgb@224": rgb}, schedule, generator=torch.Generator().manual_seed(0))  # warm-up
            best = timed({"eager": eager, "compiled": compiled}, rgb, schedule, repeats)
            (eager_ms, eager_cpu, eager_ids), (compiled_ms, compiled_cpu, compiled_ids) = (best["eager"],
                                                                                           best["compiled"])
            rows.append(dict(cfg=cfg, temperature=temperature, eager_ms=eager_ms, compiled_ms=compiled_ms,
                             eager_cpu=eager_cpu, compiled_cpu=compiled_cpu, first_s=first,
                             same=bool(torch.equal(eager_ids, compiled_ids))))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=4, help="encoder and decoder depth")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="MaskGIT steps")
    p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 2.0], help="guidance scales (1 = none)")
    p.add_argument("--temps", type=float, nargs="+", default=[1.0, 0.0], help="temperatures (0 = greedy)")
    p.add_argument("--repeats", type=int, default=3, help="timed generations per sampler, alternating (best of)")
    p.add_argument("--backend", default="inductor", help="torch.compile backend")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.dim, args.depth, args.heads)
    rows = measure(model, steps=args.steps, cfgs=tuple(args.cfg), temps=tuple(args.temps), repeats=args.repeats,
                   backend=args.backend)
    print(f"dim {args.dim}, depth {args.depth}+{args.depth}, {args.steps} MaskGIT steps, batch 1, fp32, "
          f"{args.threads} threads, torch {torch.__version__}, backend {args.backend}, best of {args.repeats}")
    print(f"{'cfg':>4} {'temp':>5} {'eager ms/step':>14} {'compiled':>9} {'speed-up':>9} {'eager CPU ms':>13} "
          f"{'compiled':>9} {'speed-up':>9} {'compile s':>10}  same tokens")
    for r in rows:
        print(f"{r['cfg']:>4g} {r['temperature']:>5g} {r['eager_ms']:>14.1f} {r['compiled_ms']:>9.1f} "
              f"{r['eager_ms'] / r['compiled_ms']:>8.2f}x {r['eager_cpu']:>13.1f} {r['compiled_cpu']:>9.1f} "
              f"{r['eager_cpu'] / r['compiled_cpu']:>8.2f}x {r['first_s']:>10.1f}  {'yes' if r['same'] else 'NO'}")


if __name__ == "__main__":
    main()
