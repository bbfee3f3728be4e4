"""Wall time and peak memory of `open4m demo`, and the world model's held-out metrics at a larger N.

    python benchmarks/demo.py [--model DIR] [--scenes 6] [--eval-scenes 64] [--threads 2]

Prints one table: the demo's end-to-end time (load, render, every task, pictures) and the
`open4m eval` headline metrics on `--eval-scenes` val-split scenes, model vs trivial baseline.
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
    ap.add_argument("--eval-scenes", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the eval metrics here")
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
    samples = load_samples("world", limit=args.eval_scenes, split="val", image_size=model.image_size)
    t0 = time.perf_counter()
    result = evaluate(model, samples, batch_size=16, progress=False)
    eval_s = time.perf_counter() - t0
    print(f"config: model={args.model or 'shipped'} threads={args.threads} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.1f} torch={torch.__version__}")
    print(f"open4m demo ({args.scenes} test scenes, all tasks): {demo_s:.1f} s, peak RSS {peak_mb:.0f} MB")
    print(f"open4m eval ({args.eval_scenes} val scenes, all tasks): {eval_s:.1f} s\n")
    print(result.table())
    if args.json:
        write_json(result, args.json, {"split": "val", "scenes": args.eval_scenes, "demo_seconds": round(demo_s, 1)})
        print(f"\nwrote {args.json}")
    else:
        print(json.dumps({"demo_seconds": round(demo_s, 1), "eval_seconds": round(eval_s, 1)}))


if __name__ == "__main__":
    main()
