"""Wall time and peak memory of `open4m demo`, and the world model's held-out metrics at a larger N.

    python benchmarks/demo.py [--model DIR] [--scenes 6] [--eval-scenes 128] [--threads 2] [--record]

Prints one table: the demo's end-to-end time (load, render, every task, pictures) and the
`open4m eval` metrics on `--eval-scenes` val-split scenes, model vs trivial baseline, each headline
metric with its 95% bootstrap interval. `--record` writes them into the bundle's `world.json` and
regenerates its model card (`open4m.recipes.world.record_evaluation`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="bundle folder (default: the shipped model)")
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--eval-scenes", type=int, default=128)
    ap.add_argument("--resamples", type=int, default=100, help="bootstrap draws of each interval (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the eval metrics here")
    ap.add_argument("--record", action="store_true", help="record the metrics in --model's world.json and model card")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from open4m.demo.run import run_demo
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import evaluate, load_samples, write_json

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run_demo(args.model, out, scenes=args.scenes, progress=False)
        demo_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = EvalModel.load(args.model)
    samples = load_samples("world", limit=args.eval_scenes, split="val", image_size=model.image_size,
                           caption_order=model.caption_order)
    t0 = time.perf_counter()
    result = evaluate(model, samples, batch_size=16, progress=False, resamples=args.resamples)
    eval_s = time.perf_counter() - t0
    print(f"config: model={args.model or 'shipped'} threads={args.threads} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.1f} torch={torch.__version__}")
    print(f"open4m demo ({args.scenes} test scenes, all tasks): {demo_s:.1f} s, peak RSS {peak_mb:.0f} MB")
    print(f"open4m eval ({args.eval_scenes} val scenes, all tasks): {eval_s:.1f} s\n")
    print(result.table())
    extra = {"split": "val", "scenes": args.eval_scenes, "demo_seconds": round(demo_s, 1),
             "command": f"python benchmarks/demo.py --eval-scenes {args.eval_scenes} --resamples {args.resamples}"}
    if args.json:
        write_json(result, args.json, extra)
        print(f"\nwrote {args.json}")
    else:
        print(json.dumps({"demo_seconds": round(demo_s, 1), "eval_seconds": round(eval_s, 1)}))
    if args.record:
        if not args.model:
            raise SystemExit("--record needs --model DIR (the shipped bundle is rewritten by copying a recorded one)")
        from open4m.recipes.world import record_evaluation

        record_evaluation(args.model, evaluation={**result.to_json(), **extra})
        print(f"recorded in {args.model}/world.json and its README.md")


if __name__ == "__main__":
    main()
