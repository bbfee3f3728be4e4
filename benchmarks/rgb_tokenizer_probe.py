"""Does the RGB tokenizer cap caption -> RGB? Round-trip held-out photos through RGB VQ-VAEs and read them back.

Any RGB the FourM generates is a grid of the RGB tokenizer's tokens, decoded. So the best a generated image can
be is the tokenizer's round trip of the real photo (its own tokens, decoded). This trains RGB VQ-VAEs of several
sizes on the recipe's tokenizer scenes, round-trips held-out val scenes through each, and reads their shapes
back with a world model's box reader, as `open4m eval`'s caption -> RGB does (multiset shape F1 of the boxes
read against the scene's visible shapes; baseline: another scene's image read back).

    python benchmarks/rgb_tokenizer_probe.py                       # the shipped model reads; 3 tokenizers
    python benchmarks/rgb_tokenizer_probe.py --configs 64x1:600,128x2:4000 --train-scenes 3000

A config is `DIMxDEPTH[/PATCH]:STEPS` (ViT encoder and decoder width and depth, pixels per token side (default: the
model's token grid's), optimizer steps at the recipe's batch and learning rate; heads: DIM / 32). `64x1:600` is the
recipe's (`tokenizers` in configs/demo/world64.yaml); `128x2/4:3000` tokenizes a 64 px image in 16x16 tokens.

`--refit DIMxDEPTH:STEPS,...` trains only a new decoder of that size for the model's own RGB tokenizer (its
encoder and codebook frozen, so its tokens, and the FourM trained on them, stay as they are). For the model's
tokenizer and each refit the last columns read back what the FourM draws from a caption (the eval's caption ->
RGB settings: 8 MaskGIT steps, temperature 1, seed 0), decoded by that decoder: a better round trip of a photo need not
make the model's own token grids more legible.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def parse_config(text: str) -> tuple[int, int, int | None, int]:
    """`DIMxDEPTH[/PATCH]:STEPS` -> (dim, depth, patch or None, steps)."""
    arch, _, steps = text.partition(":")
    arch, _, patch = arch.partition("/")
    dim, _, depth = arch.partition("x")
    return int(dim), int(depth), int(patch) if patch else None, int(steps)


def round_trip(tokenizer, photos: np.ndarray) -> np.ndarray:
    """uint8 photos -> the tokenizer's decoded tokens, uint8 again."""
    from open4m.data.synthetic.world import encode_images, from_model_form

    ids = torch.from_numpy(encode_images(tokenizer, "rgb", photos))
    with torch.no_grad():
        decoded = tokenizer.decode(ids)
    return from_model_form("rgb", decoded)


def refit_decoder(tokenizer, train, base, dim: int, depth: int, steps: int, out: Path):
    """`tokenizer` with a new ViT decoder of `dim` x `depth` trained on `train`'s RGB at the recipe's batch, learning
    rate and EMA; its encoder and codebook are frozen, so it gives the same tokens."""
    from open4m.recipes.world import _Samples
    from open4m.tokenizers import VQVAE
    from open4m.train.tasks import tokenizer as task

    frozen = ("encoder", "quant_proj", "quantize")

    class DecoderOnly(VQVAE):
        def train(self, mode: bool = True):  # the quantizer's codebook moves in train mode: keep it in eval
            super().train(mode)
            for name in frozen:
                getattr(self, name).eval()
            return self

    model = DecoderOnly(replace(tokenizer.config, dec_dim=dim, dec_depth=depth, dec_heads=max(dim // 32, 1)))
    kept = {k: v for k, v in tokenizer.state_dict().items() if k.partition(".")[0] not in ("decoder", "post_quant_proj")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.partition(".")[0] in ("decoder", "post_quant_proj") for k in missing)
    for name in frozen:
        getattr(model, name).requires_grad_(False)
    t = base.train
    recipe = task.TokenizerRecipe(
        kind="vqvae", data=task.DataSection(batch_size=t.batch_size),
        objective=task.ObjectiveSection(loss="mse", codebook_weight=0.0, sample_every=0),
        optim=task.TokenizerOptim(lr=t.lr, warmup=min(t.warmup, steps - 1)),
        train=task.TokenizerRun(steps=steps, out_dir=str(out), ema_decay=t.ema_decay, save_every=steps, seed=0),
        log=task.TokenizerLog(every=max(steps, 1), progress=False))
    result = task.train_tokenizer(recipe, dataset=_Samples("rgb", train.images["rgb"]), model=model)
    return VQVAE.from_pretrained(result.model_path).eval()


def drawn_from_captions(model, val) -> torch.Tensor:
    """The RGB token grids the model draws from `val`'s captions with `open4m eval`'s caption -> RGB settings, all
    in one batch (the eval draws in batches, so its draws differ: the same distribution, other samples)."""
    cap, target = model.sequence_modality("caption", output=False), model.image_modality("rgb")
    out = model.generate({cap: model.text_condition("caption", [s["caption"] for s in val])}, target, steps=8,
                         temperature=1.0, seed=0)
    return out.tokens[target]["tensor"]


def measure(model, val, train, base, configs: list[str], refits: list[str] = ()) -> list[tuple]:
    """(what the reader sees, train seconds, PSNR, scores, baseline scores, drawn): the photo, the model's own RGB
    tokenizer's round trip, the round trip of an RGB VQ-VAE trained for each of `configs` on `train`, and of the
    model's tokenizer with each of `refits` as its decoder. `drawn` is (scores, baseline scores) of the model's
    caption -> RGB token grids decoded by that decoder, where the tokenizer shares the model's tokens (else None)."""
    from open4m.data.synthetic.world import encode_images, from_model_form
    from open4m.eval.runner import read_back_shapes
    from open4m.metrics import reconstruction_metrics
    from open4m.recipes.world import train_image_tokenizer
    from open4m.tokenizers import VQVAE

    size, patch = model.image_size, model.spec.patch_size
    photos = np.stack([np.asarray(s["rgb"]) for s in val])
    own = model.tokenizer(model.image_modality("rgb"))
    rows = [("photo itself", "-", float("inf"), *read_back_shapes(model, photos, val), None)]
    drawn = drawn_from_captions(model, val)

    def row(label: str, tokenizer, seconds: str, same_tokens: bool = False) -> tuple:
        recon = round_trip(tokenizer, photos)
        read = None
        if same_tokens:
            with torch.no_grad():
                read = read_back_shapes(model, from_model_form("rgb", tokenizer.decode(drawn)), val)
        psnr = reconstruction_metrics(recon, photos, 255.0)["psnr"]
        return label, seconds, psnr, *read_back_shapes(model, recon, val), read

    rows.append(row("the model's tokenizer", own, "-", same_tokens=True))
    with tempfile.TemporaryDirectory() as tmp:
        for text in configs:
            dim, depth, own_patch, steps = parse_config(text)
            section = replace(base, arch={"dim": dim, "depth": depth, "heads": max(dim // 32, 1)},
                              train=replace(base.train, steps=steps))
            start = time.perf_counter()
            path = train_image_tokenizer("rgb", train, section, size, own_patch or patch,
                                         Path(tmp) / text.replace(":", "_").replace("/", "p"), progress=False)
            seconds = time.perf_counter() - start
            grid = f", {size // own_patch}x{size // own_patch} tokens" if own_patch else ""
            rows.append(row(f"{dim}x{depth}{grid}, {steps} steps", VQVAE.from_pretrained(path).eval(), f"{seconds:.0f}"))
        for text in refits:
            dim, depth, _, steps = parse_config(text)
            start = time.perf_counter()
            refit = refit_decoder(own, train, base, dim, depth, steps, Path(tmp) / f"refit_{text.replace(':', '_')}")
            seconds = time.perf_counter() - start
            same = np.array_equal(encode_images(refit, "rgb", photos), encode_images(own, "rgb", photos))
            assert same, "a refit decoder must leave the tokens as they are"
            rows.append(row(f"its decoder {dim}x{depth}, {steps} steps", refit, f"{seconds:.0f}", same_tokens=True))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="the world model whose box reader reads (default: the shipped one)")
    ap.add_argument("--configs", default="64x1:600,64x1:3000,128x2:3000")
    ap.add_argument("--refit", default="", help="decoders to train again for the model's tokenizer, DIMxDEPTH:STEPS,...")
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
    rows = measure(model, val, train, base, [c for c in args.configs.split(",") if c],
                   [c for c in args.refit.split(",") if c])
    print(f"\n{'RGB the reader sees':34s} {'train s':>8s} {'PSNR dB':>8s} {'shape F1':>9s} {'count':>6s} "
          f"{'other scene F1':>15s} {'caption->RGB F1 (other)':>24s}")
    for label, seconds, psnr, scores, other, drawn in rows:
        gen = f"{drawn[0]['shape_f1']:.3f} ({drawn[1]['shape_f1']:.3f})" if drawn else "-"
        print(f"{label:34s} {seconds:>8s} {psnr:8.2f} {scores['shape_f1']:9.3f} {scores['count_acc']:6.3f} "
              f"{other['shape_f1']:15.3f} {gen:>24s}")


if __name__ == "__main__":
    main()
