"""Does the RGB tokenizer cap caption -> RGB? Round-trip held-out photos through RGB VQ-VAEs and read them back.

Any RGB the FourM generates is a grid of the RGB tokenizer's tokens, decoded. So the best a generated image can
be is the tokenizer's round trip of the real photo (its own tokens, decoded). This trains RGB VQ-VAEs of several
sizes on the recipe's tokenizer scenes, round-trips held-out val scenes through each, and reads their shapes
back with a world model's box reader, as `open4m eval`'s caption -> RGB does (multiset shape F1 of the boxes
read against the scene's visible shapes; baseline: another scene's image read back).

    python benchmarks/rgb_tokenizer_probe.py                       # the shipped model reads; 3 tokenizers
    python benchmarks/rgb_tokenizer_probe.py --configs 64x1:600,128x2:4000 --train-scenes 3000

A config is `DIMxDEPTH:STEPS` (ViT encoder and decoder width and depth, optimizer steps at the recipe's batch and
learning rate; heads: DIM / 32). `64x1:600` is the recipe's (`tokenizers` in configs/demo/world64.yaml).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def parse_config(text: str) -> tuple[int, int, int]:
    arch, _, steps = text.partition(":")
    dim, _, depth = arch.partition("x")
    return int(dim), int(depth), int(steps)


def round_trip(tokenizer, photos: np.ndarray) -> np.ndarray:
    """uint8 photos -> the tokenizer's decoded tokens, uint8 again."""
    from open4m.data.synthetic.world import encode_images, from_model_form

    ids = torch.from_numpy(encode_images(tokenizer, "rgb", photos))
    with torch.no_grad():
        decoded = tokenizer.decode(ids)
    return from_model_form("rgb", decoded)


def read_back(model, images: np.ndarray, samples) -> tuple[dict, dict]:
    """Shape F1 and count accuracy of the boxes the model reads from `images` (and the other-scene baseline)."""
    from open4m.eval.runner import _at
    from open4m.eval.scoring import score

    rgb = np.stack(_at(model, "rgb", list(images), model.rgb))
    scores, baselines = score("caption2rgb", list(zip(rgb, model.texts("det", {model.rgb: rgb}))), samples, 9)
    return scores, next(iter(baselines.values()))


def measure(model, val, train, base, configs: list[str]) -> list[tuple]:
    """(what the reader sees, train seconds, PSNR, scores, baseline scores): the photo, the model's own RGB
    tokenizer's round trip, and the round trip of an RGB VQ-VAE trained for each of `configs` on `train`."""
    from open4m.metrics import reconstruction_metrics
    from open4m.recipes.world import train_image_tokenizer
    from open4m.tokenizers import VQVAE

    size, patch = model.image_size, model.spec.patch_size
    photos = np.stack([np.asarray(s["rgb"]) for s in val])
    rows = [("photo itself", "-", float("inf"), *read_back(model, photos, val))]

    def row(label: str, tokenizer, seconds: str) -> tuple:
        recon = round_trip(tokenizer, photos)
        return label, seconds, reconstruction_metrics(recon, photos, 255.0)["psnr"], *read_back(model, recon, val)

    rows.append(row("the model's tokenizer", model.tokenizer(model.image_modality("rgb")), "-"))
    with tempfile.TemporaryDirectory() as tmp:
        for text in configs:
            dim, depth, steps = parse_config(text)
            section = replace(base, arch={"dim": dim, "depth": depth, "heads": max(dim // 32, 1)},
                              train=replace(base.train, steps=steps))
            start = time.perf_counter()
            path = train_image_tokenizer("rgb", train, section, size, patch, Path(tmp) / text.replace(":", "_"),
                                         progress=False)
            seconds = time.perf_counter() - start
            rows.append(row(f"{dim}x{depth}, {steps} steps", VQVAE.from_pretrained(path).eval(), f"{seconds:.0f}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="the world model whose box reader reads (default: the shipped one)")
    ap.add_argument("--configs", default="64x1:600,64x1:3000,128x2:3000")
    ap.add_argument("--train-scenes", type=int, default=3000, help="train scenes the tokenizers learn from")
    ap.add_argument("--scenes", type=int, default=128, help="held-out val scenes read back")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from open4m.data.synthetic.world import render_world
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples
    from open4m.recipes.world import WorldTokenizers, load_recipe

    model = EvalModel.load(args.model)
    size, patch = model.image_size, model.spec.patch_size
    val = load_samples(limit=args.scenes, split="val", image_size=size, caption_order=model.caption_order)
    train = render_world("train", args.train_scenes, size, progress=False)
    base: WorldTokenizers = load_recipe().tokenizers
    print(f"config: reader={args.model or 'shipped'} train scenes={args.train_scenes} val scenes={args.scenes} "
          f"size={size} px, patch {patch} ({(size // patch) ** 2} tokens), codebook {base.codebook_size['rgb']}, "
          f"threads={args.threads} torch={torch.__version__}")
    rows = measure(model, val, train, base, args.configs.split(","))
    print(f"\n{'RGB the reader sees':28s} {'train s':>8s} {'PSNR dB':>8s} {'shape F1':>9s} {'count':>6s} "
          f"{'other scene F1':>15s}")
    for label, seconds, psnr, scores, other in rows:
        print(f"{label:28s} {seconds:>8s} {psnr:8.2f} {scores['shape_f1']:9.3f} {scores['count_acc']:6.3f} "
              f"{other['shape_f1']:15.3f}")


if __name__ == "__main__":
    main()
