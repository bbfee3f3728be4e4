"""Depth + caption -> RGB on the world model: what each least-squares estimator scores and what it costs.

The PSNR of depth + caption -> RGB rewards each pixel's posterior mean. Three ways to approximate it on one
model and one set of val scenes: the pixel mean of K MaskGIT samples (the eval's headline before 2026-12-06),
the mean of K ROAR (random-order) samples, and `Pipeline.estimate` (the mean of N grids drawn independently
from the model's per-token distributions of one pass, the eval's `psnr` now). Each row: PSNR against the
photos, wall time per scene (all scenes in one batch), and the process's peak resident memory during the row
(reset before each).

    python benchmarks/estimate.py [--model DIR] [--scenes 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from generation import peak_rss_mb, reset_peak_rss

#: (label, kind, count): kind "maskgit" / "roar" averages `count` samples of 8 steps, "estimate" draws `count` grids.
ESTIMATORS = (("mean of 8 MaskGIT samples", "maskgit", 8), ("mean of 8 ROAR samples", "roar", 8),
              ("estimate, 8 draws", "estimate", 8), ("estimate, 64 draws (the eval's)", "estimate", 64),
              ("estimate, 128 draws", "estimate", 128))


def estimate(model, inputs: dict, kind: str, count: int) -> np.ndarray:
    """(B, H, W, 3) float estimate of the photos from depth + caption `inputs`, by `kind` with `count` samples."""
    from open4m.eval.runner import _rgb_draws

    if kind == "estimate":
        return model.image_estimate("rgb", inputs, draws=count).astype(np.float64)
    return _rgb_draws(model, inputs, count, scheme=kind).astype(np.float64).mean(axis=1)


def run(model, samples, estimators=ESTIMATORS) -> list[tuple[str, float, float, float]]:
    """One row per estimator: (label, PSNR in dB, ms per scene, peak RSS in MB); prints the table."""
    from open4m.eval.runner import _rgb_inputs

    truth = np.stack([np.asarray(s["rgb"], np.float64) for s in samples])
    inputs = _rgb_inputs(model, [s["caption"] for s in samples], [s["depth"] for s in samples])
    mean_image = np.broadcast_to(truth.mean(0), truth.shape)

    def psnr(x: np.ndarray) -> float:
        return float(10 * np.log10(255.0**2 / np.mean((x - truth) ** 2)))

    print(f"{'estimator':34s} {'PSNR dB':>8s} {'ms/scene':>9s} {'peak RSS MB':>12s}")
    print(f"{'the mean image (baseline)':34s} {psnr(mean_image):8.2f} {'-':>9s} {'-':>12s}")
    rows = []
    for label, kind, count in estimators:
        reset_peak_rss()
        start = time.perf_counter()
        est = estimate(model, inputs, kind, count)
        ms = (time.perf_counter() - start) * 1000 / len(samples)
        rows.append((label, psnr(est), ms, peak_rss_mb()))
        print(f"{label:34s} {rows[-1][1]:8.2f} {ms:9.1f} {rows[-1][3]:12.0f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a world model bundle (default: the shipped one)")
    ap.add_argument("--scenes", type=int, default=128, help="val scenes, all in one batch")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples

    model = EvalModel.load(args.model)
    samples = load_samples(limit=args.scenes, split="val", image_size=model.image_size,
                           caption_order=model.caption_order)
    print(f"config: model={args.model or 'shipped'} scenes={args.scenes} of val (one batch) threads={args.threads} "
          f"torch={torch.__version__}; 8 steps at temperature 1 for samples, seed 0 for the estimates")
    run(model, samples)


if __name__ == "__main__":
    main()
