"""How fast can the world model's encoder learn to recognise shapes, and does resolution help?

    python benchmarks/recognition_probe.py [--steps 2000] [--train-scenes 1500] [--val-scenes 200]
                                           [--configs 64/8,128/16,128/8,64/4]

The diagnosis in docs/results.md found the world model locating objects but not recognising their
shape. This probe separates the trunk from the 4M machinery: the shipped encoder trunk (the recipe's
preset and width, `open4m.model.FourMEncoder`) with a linear head that, like the FourM's token head,
predicts each patch from its own token (here its pixels' classes), trained from scratch on RGB ->
per-pixel class (every pixel supervised, every step; no VQ tokens, no masking, no other task) with
the recipe's batch and learning rate. It shows how fast the trunk can learn shapes when every pixel is
supervised at every step: a generous reference for the FourM's RGB -> semseg at that size. It also
measures resolution at fixed compute: `128/16` sees 128 px scenes as the same 8x8 token grid as
`64/8`, `128/8` as a 16x16 grid (4x the tokens), and `64/4` the 64 px scenes as a 16x16 grid (the recipe's
`world.rgb_patch_size: 4`).

Prints, per configuration and checkpoint: the shape accuracy on true object pixels (chance 1/6),
the 9-class mIoU at the scene's own resolution, samples seen and seconds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from tqdm import tqdm


def scenes(split: str, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB in the tokenizers' model form and class maps of `count` scenes of `split`."""
    from open4m.data.synthetic import generate_sample, seed_for
    from open4m.data.synthetic.world import to_model_form

    rgb, sem = [], []
    for i in tqdm(range(count), desc=f"{split} scenes at {size} px", leave=False):
        s = generate_sample(seed_for(split, i), size=size)
        rgb.append(to_model_form("rgb", s["rgb"]))
        sem.append(to_model_form("semseg", s["semseg"]))
    return torch.stack(rgb), torch.stack(sem)


def scores(pred: torch.Tensor, truth: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """Shape accuracy on object pixels (class >= 3) and the set's mIoU (`open4m.metrics.SegmentationMetrics`)."""
    from open4m.metrics import SegmentationMetrics

    objects = truth >= 3
    acc = float((pred[objects] == truth[objects]).float().mean())
    seg = SegmentationMetrics(num_classes)
    seg.update(pred, truth)
    return acc, seg.compute()["miou"]


class PatchClassifier(nn.Module):
    """The trunk's normed patch tokens -> each patch's per-pixel class logits (one linear map per token)."""

    def __init__(self, trunk: nn.Module, patch: int, num_classes: int) -> None:
        super().__init__()
        self.trunk, self.patch = trunk, patch
        self.head = nn.Linear(trunk.config.dim, patch * patch * num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = x.shape[-1] // self.patch
        tokens = self.trunk.forward_features(x)
        return rearrange(self.head(tokens), "b (h w) (p q c) -> b c (h p) (w q)", h=grid, w=grid, p=self.patch,
                         q=self.patch)


def probe(size: int, patch: int, data, args) -> list[tuple]:
    from open4m.data.synthetic.scene import SEMSEG_CLASSES
    from open4m.model import preset
    from open4m.model.encoder import EncoderConfig, FourMEncoder
    from open4m.modalities import Kind, Modality
    from open4m.recipes.world import load_recipe

    recipe = load_recipe(args.recipe).fourm
    if recipe.optim.lr is None:
        raise SystemExit(f"{args.recipe} sets no fourm.optim.lr (only blr); the probe needs an absolute learning rate")
    config = preset(recipe.model.preset, **recipe.model.arch, image_size=size, patch_size=patch)
    pixels = Modality(f"rgb@{size}", Kind.PIXELS, image_size=size, patch_size=patch, num_channels=3, encoder=True)
    torch.manual_seed(0)
    model = PatchClassifier(FourMEncoder(EncoderConfig.from_fourm(config, pixels)), patch, len(SEMSEG_CLASSES))
    optim = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay)
    (x, y), (xv, yv) = data
    batch = args.batch or recipe.data.batch_size
    rng = np.random.default_rng(0)
    rows, start = [], time.perf_counter()
    for step in tqdm(range(1, args.steps + 1), desc=f"{size} px / patch {patch}", leave=False):
        idx = torch.from_numpy(rng.integers(0, len(x), batch))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if step % args.every == 0 or step == args.steps:
            seconds = time.perf_counter() - start
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model(xv[i:i + 50]).argmax(1) for i in range(0, len(xv), 50)])
            model.train()
            rows.append((f"{size}/{patch}", (size // patch) ** 2, step, step * batch, *scores(pred, yv, len(SEMSEG_CLASSES)),
                         seconds))
            tqdm.write(ROW.format(*rows[-1]))
    return rows


HEADER = f"{'px/patch':<10}{'tokens':>7}{'step':>7}{'samples':>9}{'shape acc':>11}{'mIoU':>8}{'train s':>9}"
ROW = "{:<10}{:>7}{:>7}{:>9}{:>11.3f}{:>8.3f}{:>9.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=500, help="score the val scenes every this many steps")
    ap.add_argument("--train-scenes", type=int, default=1500)
    ap.add_argument("--val-scenes", type=int, default=200)
    ap.add_argument("--configs", default="64/8,128/16,128/8,64/4", help="image size / patch size pairs")
    ap.add_argument("--recipe", default="configs/demo/world64.yaml", help="the world recipe whose trunk is probed")
    ap.add_argument("--batch", type=int, default=0, help="samples per step (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    configs = [tuple(int(v) for v in c.split("/")) for c in args.configs.split(",")]
    data = {size: (scenes("train", args.train_scenes, size), scenes("val", args.val_scenes, size))
            for size in sorted({s for s, _ in configs})}
    rows = [row for size, patch in configs for row in probe(size, patch, data[size], args)]
    print(f"config: dense RGB -> class probe, trunk of {args.recipe}, batch {args.batch or 'of the recipe'}, "
          f"{args.train_scenes} train / {args.val_scenes} val scenes, threads={args.threads}, cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    print(HEADER)
    for r in rows:
        print(ROW.format(*r))


if __name__ == "__main__":
    main()
