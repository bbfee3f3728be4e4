"""The 4M claim in miniature: one FourM on all modalities vs single-task specialists, equal compute.

    python benchmarks/multitask_vs_specialist.py --run /tmp/world64_run [--steps 400] [--eval-scenes 48]

Reuses the world and tokenizers of an `open4m demo --train` run (`RUN/tokens`, `RUN/model`). Every
model is trained by `open4m.train` from scratch with the recipe's architecture, batch and schedule
for the same number of steps (so the same compute): the multitask FourM on every modality with the
4M masking, and one specialist per task on RGB -> that modality only. All are scored on the same
val-split scenes with `open4m.eval` (greedy decoding, the same tokenizers).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch

TASKS = {"depth": "depth", "normal": "normal", "semseg": "semseg"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="an `open4m demo --train --out RUN` folder")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps of every model")
    ap.add_argument("--eval-scenes", type=int, default=48)
    ap.add_argument("--out", default=None, help="training runs go here (default RUN/benchmark)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.demo import WorldModel
    from open4m.demo.recipe import train_fourm
    from open4m.eval.runner import HEADLINE, evaluate
    from open4m.model import FourM

    run = Path(args.run)
    base = WorldModel.load(run / "model")
    spec = base.spec
    recipe = _fourm_section(base)
    recipe["train"].update(steps=args.steps, save_every=args.steps, resume=True)
    out = Path(args.out) if args.out else run / "benchmark"
    samples = [generate_sample(seed_for("val", i), spec.image_size) for i in range(args.eval_scenes)]

    variants = {"multitask": None, **{f"rgb->{t}": t for t in TASKS}}
    rows = []
    for name, task in variants.items():
        section = copy.deepcopy(recipe)
        names = None
        if task is not None:  # a specialist: RGB pixels in, one token modality out (every token a target)
            names = [spec.rgb_pixels, spec.tok(TASKS[task])]
            section["data"]["target_only"] = [spec.tok(TASKS[task])]
        t0 = time.perf_counter()
        weights = train_fourm(section, spec, run / "tokens", out / name.replace("->", "_to_"), names)
        seconds = time.perf_counter() - t0
        model = WorldModel(spec, FourM.from_pretrained(weights).eval(), base.tokenizers, base.text, base.info)
        result = evaluate(model, samples, list(TASKS) if task is None else [task], batch_size=16, progress=False)
        for t, res in result.metrics.items():
            key, _ = HEADLINE[t]
            rows.append((name, t, key, res["model"][key], res["baseline"][key], seconds))
    print(f"config: {args.steps} steps each, batch {recipe['data']['batch_size']}, arch {recipe['model']['arch']}, "
          f"{args.eval_scenes} val scenes, cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    print(f"{'model':<14}{'task':<8}{'metric':<10}{'value':>9}{'baseline':>10}{'train s':>9}")
    for r in rows:
        print(f"{r[0]:<14}{r[1]:<8}{r[2]:<10}{r[3]:>9.4f}{r[4]:>10.4f}{r[5]:>9.0f}")


def _fourm_section(model) -> dict:
    import yaml

    return yaml.safe_load(model.info["recipe"])["fourm"]


if __name__ == "__main__":
    main()
