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
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

TASKS = {"depth": "depth", "normal": "normal", "semseg": "semseg"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="an `open4m demo --train --out RUN` folder")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps of every model")
    ap.add_argument("--eval-scenes", type=int, default=48)
    ap.add_argument("--out", default=None, help="training runs go here (default RUN/benchmark)")
    ap.add_argument("--record", action="store_true", help="record the table in RUN/model's world.json and model card")
    args = ap.parse_args()
    torch.set_num_threads(1)

    import yaml

    from open4m.config import from_dict
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import HEADLINE, evaluate, load_samples
    from open4m.model import FourM
    from open4m.recipes.world import WorldRecipe, train_fourm

    run = Path(args.run)
    base = EvalModel.load(run / "model")
    spec = base.spec
    info = json.loads((run / "model" / "world.json").read_text())
    recipe = from_dict(WorldRecipe, yaml.safe_load(info["recipe"]), command="demo").fourm
    recipe = replace(recipe, train=replace(recipe.train, steps=args.steps, save_every=args.steps, resume=True))
    out = Path(args.out) if args.out else run / "benchmark"
    samples = load_samples("world", limit=args.eval_scenes, split="val", image_size=spec.image_size,
                           caption_order=spec.caption_order)

    variants = {"multitask": None, **{f"rgb->{t}": t for t in TASKS}}
    rows = []
    for name, task in variants.items():
        section, names = recipe, None
        if task is not None:  # a specialist: RGB pixels in, one token modality out (every token a target)
            names = [spec.rgb_pixels, spec.tok(TASKS[task])]
            section = replace(recipe, data=replace(recipe.data, target_only=[spec.tok(TASKS[task])]))
        t0 = time.perf_counter()
        weights = train_fourm(section, spec, run / "tokens", out / name.replace("->", "_to_"), names)
        seconds = time.perf_counter() - t0
        model = EvalModel.load(FourM.from_pretrained(weights).eval(), tokenizers=run / "model")  # the run's tokenizers
        result = evaluate(model, samples, list(TASKS) if task is None else [task], batch_size=16, progress=False)
        for t, res in result.metrics.items():
            key, _ = HEADLINE[t]
            rows.append((name, t, key, res["model"][key], res["baseline"][key], seconds))
    print(f"config: {args.steps} steps each, batch {recipe.data.batch_size}, arch {recipe.model.arch}, "
          f"{args.eval_scenes} val scenes, cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    print(f"{'model':<14}{'task':<8}{'metric':<10}{'value':>9}{'baseline':>10}{'train s':>9}")
    for r in rows:
        print(f"{r[0]:<14}{r[1]:<8}{r[2]:<10}{r[3]:>9.4f}{r[4]:>10.4f}{r[5]:>9.0f}")
    if args.record:
        from open4m.recipes.world import record_evaluation

        comparison = [dict(model=r[0], task=r[1], metric=r[2], value=r[3], baseline=r[4], train_s=r[5], steps=args.steps)
                      for r in rows]
        record_evaluation(run / "model", comparison=comparison)
        print(f"recorded in {run / 'model'}/world.json and its README.md")


if __name__ == "__main__":
    main()
