"""Speculative decoding on a trained model: how many guesses are kept, and what that buys.

Random-init models repeat tokens, so `benchmarks/generation.py` flatters the prompt-lookup guesses.
This script measures them where outputs mean something: the shipped world model
(`open4m/assets/world64`) generating each of its sequence modalities from RGB for `--scenes`
val-split scenes, one scene per call, greedy. For each `draft_tokens` setting it prints the
decoder passes, tokens per pass, ms per scene (best of `--repeats` alternating runs) and whether the
texts equal those of plain decoding (`draft_tokens=0`).

    python benchmarks/speculative.py [--scenes 16] [--drafts 0,4,8] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main() -> None:
    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.data.synthetic.world import SEQUENCE_MODALITIES
    from open4m.eval.models import EvalModel
    from open4m.generation import sampler as sampler_module

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a world bundle folder (default: the shipped one)")
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--drafts", default="0,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    drafts = [int(d) for d in args.drafts.split(",")]
    if 0 not in drafts:
        drafts.insert(0, 0)

    passes: list[tuple[int, int]] = []
    verify = sampler_module.verify

    def counting(logits, guesses, *rest, **kw):
        out = verify(logits, guesses, *rest, **kw)
        passes.append((guesses.shape[1], out.shape[1]))
        return out

    sampler_module.verify = counting
    world = EvalModel.load(args.model)  # one Pipeline per target spec over the world model
    rgb = np.stack([generate_sample(seed_for("val", i), world.image_size)["rgb"] for i in range(args.scenes)])
    print(f"torch {torch.__version__}, {args.threads} threads, fp32; world model {args.model or 'shipped world64'}, "
          f"{args.scenes} val scenes, greedy, one scene per call; load average {os.getloadavg()[0]:.1f}")
    print(f"{'modality':14} {'drafts':>6} {'passes':>7} {'tokens':>7} {'tok/pass':>9} {'ms/scene':>9} {'speed-up':>9} {'same':>5}")
    for key in SEQUENCE_MODALITIES:
        texts, best, counts = {}, {d: float("inf") for d in drafts}, {}
        for repeat in range(args.repeats):
            for d in drafts:
                world.base.sampler.draft_tokens = d  # every pipeline of the model shares its sampler
                passes.clear()
                t0 = time.perf_counter()
                texts[d] = [world.texts(key, {world.rgb: rgb[i:i + 1]})[0] for i in range(args.scenes)]
                best[d] = min(best[d], (time.perf_counter() - t0) * 1000 / args.scenes)
                counts[d] = (len(passes), sum(kept for _, kept in passes))
        for d in drafts:
            n, tokens = counts[d]
            print(f"{key:14} {d:>6} {n:>7} {tokens:>7} {tokens / n:>9.2f} {best[d]:>9.1f} {best[0] / best[d]:>8.2f}x "
                  f"{str(texts[d] == texts[0]):>5}")


if __name__ == "__main__":
    main()
