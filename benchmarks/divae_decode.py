"""Diffusion-tokenizer (DiVAE) decoding: quality and cost against the number of steps and the sampler.

    python benchmarks/divae_decode.py [--work DIR] [--threads 1] [--train-steps 2000] [--json OUT.json]

For every step count in --steps and sampler setting in --samplers (scheduler/spacing; `ddpm/leading`
is the official DDPM, which always spaces its steps 'leading'; `ddim/trailing` is open4m's default)
it prints one table per part:

1. fixture: the official decoder architecture (patched ADM UNet, preset `unet_patched_t`) of the
   reference fixture `divae_rgb_tiny.safetensors` at 64 px. Its weights are random, so only cost and
   convergence mean anything: seconds per image and per step at batch 1, and the distance of each
   decode from a --ref-steps DDIM decode of the same tokens (convergence, not quality).
2. released: the released decoder size (`unet_patched`) at 224 px, random weights: seconds per
   denoising step at batch 1; a decode costs steps x that (the scheduler's own work is negligible).
3. world: a small DiVAE (the world VQ-VAE's ViT encoder, token grid and codebook size; open4m's
   compact UNet decoder, `dec_type: unet`; the released RGB tokenizer's diffusion settings: x0
   prediction, linear betas rescaled to zero terminal SNR, thresholding) trained here on the
   procedural world's 64 px RGB scenes (cached in --work, keyed by its recipe), scored on
   --eval-scenes held-out val-split scenes: PSNR (of the MSE pooled over the scenes) and SSIM
   against the originals, distance to the --ref-steps DDIM decode, seconds per image at batch 1 and
   within one batch of all eval scenes; plus the world's shipped VQ-VAE RGB tokenizer (a
   deterministic decoder with the same token budget) as a baseline row.

It also writes WORK/divae_steps.png (held-out scenes: original | VQ-VAE | DiVAE decodes at 1, 5 and
25 steps per sampler) and WORK/divae_decode.json (every number; --json writes a copy elsewhere).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

STEPS = (1, 2, 5, 10, 25, 50)
SAMPLERS = ("ddim/trailing", "ddpm/trailing", "ddpm/leading")
GRID_STEPS = (1, 5, 25)
_REPO = Path(__file__).resolve().parents[1]


def default_fixture() -> Path:
    root = os.environ.get("OPEN4M_FIXTURES")
    base = Path(root) if root else _REPO / ".." / "shared" / "fixtures"
    return (base / "reference" / "divae_rgb_tiny.safetensors").resolve()


def parse_sampler(name: str) -> tuple[str, str]:
    """'ddim/trailing' -> ('ddim', 'trailing')."""
    from open4m.tokenizers.diffusion import SCHEDULERS, SPACINGS

    kind, _, spacing = name.partition("/")
    spacing = spacing or "trailing"
    if kind not in SCHEDULERS or spacing not in SPACINGS:
        raise ValueError(f"sampler {name!r}: write <{'|'.join(SCHEDULERS)}>/<{'|'.join(SPACINGS)}>, e.g. ddpm/leading")
    return kind, spacing


# -- metrics -----------------------------------------------------------------------------------------
def to_uint8(decoded: torch.Tensor) -> np.ndarray:
    """[-1, 1] model-space RGB (B, 3, H, W) -> (B, H, W, 3) uint8, as the world and `open4m eval` see it."""
    y = decoded.detach().float().cpu()
    return ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR (dB) of uint8 images from the MSE pooled over the whole set (as `open4m eval`'s recon/rgb)."""
    mse = float(np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def ssim(pred: np.ndarray, target: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, valid region,
    per channel) of uint8 (B, H, W, C) images, averaged over images and channels."""
    a = torch.from_numpy(pred).permute(0, 3, 1, 2).double() / 255
    b = torch.from_numpy(target).permute(0, 3, 1, 2).double() / 255
    c = a.shape[1]
    g = torch.exp(-((torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMSE in model space ([-1, 1], both clamped to it as an image would show them)."""
    return float((a.clamp(-1, 1) - b.clamp(-1, 1)).double().pow(2).mean().sqrt())


def psnr_from_rmse(value: float, data_range: float = 2.0) -> float:
    return 20 * math.log10(data_range / max(value, 1e-12))


def _median_seconds(fn: Callable[[int], Any], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- the core: one tokenizer, every sampler and step count -------------------------------------------
@torch.no_grad()
def measure(tok: Any, tokens: torch.Tensor, *, steps: Sequence[int] = STEPS, samplers: Sequence[str] = SAMPLERS,
            ref_steps: int = 250, seed: int = 0, timing_images: int = 2, originals: np.ndarray | None = None,
            keep: Iterable[tuple[str, int]] = ()) -> tuple[list[dict[str, Any]], dict[str, Any], dict]:
    """Decode ``tokens`` (B, h, w) with every (sampler, steps); returns (rows, reference, kept decodes).

    Each row: ``sampler``, ``steps``, ``s_per_image`` (median over ``timing_images`` single-image
    decodes, batch 1), ``s_per_step`` (that / steps), ``batch_s_per_image`` (one decode of all B
    images / B), ``rmse_vs_ref`` and ``psnr_vs_ref`` (against a ``ref_steps`` DDIM/trailing decode of
    the same tokens and seed, in model space) and, when ``originals`` (B, H, W, 3) uint8 are given,
    ``psnr`` and ``ssim`` against them. ``reference`` holds the reference's own convergence (a
    2 x ``ref_steps`` DDIM decode against it). ``keep``: (sampler, steps) pairs whose uint8 decodes
    are returned (plus 'ref').
    """
    samplers = list(samplers)
    for s in samplers:
        parse_sampler(s)
    timing_images = max(1, min(timing_images, len(tokens)))
    keep = set(keep)
    t0 = time.perf_counter()
    ref = tok.decode(tokens, steps=ref_steps, scheduler="ddim", spacing="trailing", seed=seed)
    ref_s = time.perf_counter() - t0
    ref2 = tok.decode(tokens, steps=2 * ref_steps, scheduler="ddim", spacing="trailing", seed=seed)
    d = rmse(ref2, ref)
    reference = {"sampler": "ddim/trailing", "steps": ref_steps, "batch_s_per_image": ref_s / len(tokens),
                 "check_steps": 2 * ref_steps, "check_rmse": d, "check_psnr": psnr_from_rmse(d)}
    kept: dict = {"ref": to_uint8(ref)}
    tok.decode(tokens[:1], steps=1, seed=seed)  # warm-up
    rows = []
    for sampler in samplers:
        kind, spacing = parse_sampler(sampler)
        for n in steps:
            t0 = time.perf_counter()
            out = tok.decode(tokens, steps=n, scheduler=kind, spacing=spacing, seed=seed)
            batch_s = (time.perf_counter() - t0) / len(tokens)
            one = _median_seconds(lambda i: tok.decode(tokens[i:i + 1], steps=n, scheduler=kind, spacing=spacing,
                                                       seed=seed), timing_images)
            d = rmse(out, ref)
            row = {"sampler": sampler, "steps": n, "s_per_image": one, "s_per_step": one / n,
                   "batch_s_per_image": batch_s, "rmse_vs_ref": d, "psnr_vs_ref": psnr_from_rmse(d)}
            u8 = to_uint8(out)
            if originals is not None:
                row.update(psnr=psnr(u8, originals), ssim=ssim(u8, originals))
            if (sampler, n) in keep:
                kept[(sampler, n)] = u8
            rows.append(row)
    return rows, reference, kept


# -- tables --------------------------------------------------------------------------------------------
def format_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    table = [list(header), *[list(map(str, line)) for line in lines]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    out = []
    for i, row in enumerate(table):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _f(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def fixture_table(rows: Sequence[dict], ref_steps: int) -> str:
    header = ["sampler", "steps", "s/img (b=1)", "ms/step", f"RMSE vs DDIM-{ref_steps}", "PSNR vs ref dB"]
    return format_table(header, [[r["sampler"], r["steps"], _f(r["s_per_image"], ".3f"), _f(1000 * r["s_per_step"], ".1f"),
                                  _f(r["rmse_vs_ref"], ".3f"), _f(r["psnr_vs_ref"], ".1f")] for r in rows])


def released_table(result: dict, steps: Sequence[int]) -> str:
    per = result["s_per_step"]
    return format_table(["steps", "s/img (b=1) = steps x s/step"], [[n, f"{n * per:.1f}"] for n in steps])


def world_table(rows: Sequence[dict], ref_steps: int, batch: int) -> str:
    header = ["sampler", "steps", "PSNR dB", "SSIM", f"PSNR vs DDIM-{ref_steps}", "s/img (b=1)", f"s/img (b={batch})"]
    return format_table(header, [[r["sampler"], r.get("steps", "-"), _f(r.get("psnr"), ".2f"), _f(r.get("ssim"), ".3f"),
                                  _f(r.get("psnr_vs_ref"), ".1f"), _f(r.get("s_per_image"), ".3f"),
                                  _f(r.get("batch_s_per_image"), ".4f")] for r in rows])


# -- part 1: the official architecture on the reference fixture ----------------------------------------
def run_fixture(path: Path, *, steps: Sequence[int], samplers: Sequence[str], ref_steps: int) -> dict[str, Any]:
    from safetensors.torch import load_file

    from open4m.tokenizers import load_tokenizer

    tok = load_tokenizer(path).float().eval()
    x = load_file(str(path.with_name(path.stem + "_golden.safetensors")))["input"]
    tokens = tok.encode(x)
    rows, reference, _ = measure(tok, tokens, steps=steps, samplers=samplers, ref_steps=ref_steps,
                                 timing_images=len(tokens))
    c = tok.config
    return {"fixture": str(path), "images": len(tokens), "image_size": int(x.shape[-1]), "tokens": list(tokens.shape[1:]),
            "dec_type": c.dec_type, "decoder_params_M": sum(p.numel() for p in tok.decoder.parameters()) / 1e6,
            "schedule": {k: getattr(c, k) for k in ("beta_schedule", "prediction_type", "zero_terminal_snr",
                                                     "thresholding", "clip_sample")},
            "rows": rows, "reference": reference}


# -- part 2: the released decoder size, cost only --------------------------------------------------------
@torch.no_grad()
def run_released(*, image_size: int = 224, timed_steps: int = 3) -> dict[str, Any]:
    from open4m.tokenizers import DiVAE, DiVAEConfig

    torch.manual_seed(0)
    cfg = DiVAEConfig(image_size=image_size, n_channels=3, enc_type="vit_t_enc", patch_size=16, codebook_size=1024,
                      latent_dim=32, post_mlp=True, dec_type="unet_patched", beta_schedule="linear",
                      prediction_type="sample", thresholding=True, clip_sample=True, scheduler="ddpm")
    tok = DiVAE(cfg).eval()
    latent = torch.randn(1, cfg.latent_dim, image_size // cfg.patch_size, image_size // cfg.patch_size)
    tok.decode_latent(latent, steps=1, scheduler="ddim")  # warm-up
    t0 = time.perf_counter()
    tok.decode_latent(latent, steps=timed_steps, scheduler="ddim")
    per_step = (time.perf_counter() - t0) / timed_steps
    return {"dec_type": "unet_patched", "image_size": image_size,
            "decoder_params_M": sum(p.numel() for p in tok.decoder.parameters()) / 1e6,
            "timed_steps": timed_steps, "s_per_step": per_step}


# -- part 3: a DiVAE trained on the procedural world ------------------------------------------------------
@dataclass(frozen=True)
class WorldRecipe:
    """How the world DiVAE is trained: the world VQ-VAE's encoder and token budget, a compact UNet decoder."""

    image_size: int = 64
    patch_size: int = 8  # 8x8 tokens at 64 px, as the shipped world tokenizers
    codebook_size: int = 512  # the shipped RGB VQ-VAE's
    latent_dim: int = 16
    enc_dim: int = 64
    enc_depth: int = 1
    enc_heads: int = 2
    dec_channels: int = 32
    dec_channel_mult: tuple[int, ...] = (1, 2, 2)
    # the released RGB tokenizer's diffusion settings (x0 prediction, linear betas rescaled to zero terminal
    # SNR, dynamic thresholding and clipping of the x0 estimate)
    prediction_type: str = "sample"
    beta_schedule: str = "linear"
    thresholding: bool = True
    clip_sample: bool = True
    train_scenes: int = 3000
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 50
    ema_decay: float = 0.995

    def model_config(self) -> dict[str, Any]:
        return dict(image_size=self.image_size, n_channels=3, patch_size=self.patch_size, codebook_size=self.codebook_size,
                    latent_dim=self.latent_dim, enc_type="vit", enc_dim=self.enc_dim, enc_depth=self.enc_depth,
                    enc_heads=self.enc_heads, dec_type="unet", dec_channels=self.dec_channels,
                    dec_channel_mult=tuple(self.dec_channel_mult), dec_patch_size=4, prediction_type=self.prediction_type,
                    beta_schedule=self.beta_schedule, zero_terminal_snr=True, thresholding=self.thresholding,
                    clip_sample=self.clip_sample, scheduler="ddim", modality="rgb",
                    preprocess={"input": "image", "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"})

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


class _RGB(torch.utils.data.Dataset):
    def __init__(self, arrays: np.ndarray) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> torch.Tensor:
        from open4m.data.synthetic import world

        return world.to_model_form("rgb", self.arrays[i])


def world_divae(work: Path, recipe: WorldRecipe, *, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """The world DiVAE of ``recipe``: trained into ``work/divae_<key>`` or loaded from there."""
    from open4m.data.synthetic.world import render_world
    from open4m.tokenizers import DiVAE
    from open4m.train.tasks import tokenizer as task

    folder = work / f"divae_{recipe.key()}"
    info_path = folder / "benchmark_info.json"
    if (folder / "tokenizer").exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        return DiVAE.from_pretrained(folder / "tokenizer").float().eval(), {**info, "cached": True}
    t0 = time.perf_counter()
    data = render_world("train", recipe.train_scenes, recipe.image_size, workers=1, progress=progress)
    render_s = time.perf_counter() - t0
    model = task.build_tokenizer("divae", recipe.model_config())
    cfg = task.TokenizerRecipe(
        kind="divae", model=recipe.model_config(), data=task.DataSection(batch_size=recipe.batch_size),
        objective=task.ObjectiveSection(sample_every=0), optim=task.TokenizerOptim(lr=recipe.lr, warmup=min(recipe.warmup, recipe.steps // 10)),
        train=task.TokenizerRun(steps=recipe.steps, out_dir=str(folder), ema_decay=recipe.ema_decay,
                                save_every=max(recipe.steps // 4, 1), seed=0),
        log=task.TokenizerLog(every=50, progress=progress))
    resumed = (folder / "checkpoints").is_dir()
    t0 = time.perf_counter()
    task.train_tokenizer(cfg, dataset=_RGB(data.images["rgb"]), model=model)
    train_s = time.perf_counter() - t0
    from open4m.config import to_dict

    info = {"recipe": asdict(recipe), "train_config": to_dict(cfg), "render_s": render_s, "train_s": train_s,
            "resumed": resumed, "threads": torch.get_num_threads(), "trained_on": date.today().isoformat(),
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "decoder_params_M": sum(p.numel() for p in model.decoder.parameters()) / 1e6}
    info_path.write_text(json.dumps(info, indent=1))
    return DiVAE.from_pretrained(folder / "tokenizer").float().eval(), {**info, "cached": False}


@torch.no_grad()
def vqvae_baseline(x: torch.Tensor, originals: np.ndarray, timing_images: int) -> dict[str, Any]:
    """The world's shipped VQ-VAE RGB tokenizer: encode + decode the held-out scenes."""
    from open4m.sources.world import load_tokenizers

    spec, toks, _, _ = load_tokenizers()
    tok = toks["rgb"]
    if spec.image_size != x.shape[-1]:
        raise ValueError(f"the shipped world is {spec.image_size} px, the benchmark's images {x.shape[-1]} px")
    tokens = tok.encode(x)
    tok.decode(tokens[:1])  # warm-up
    t0 = time.perf_counter()
    out = tok.decode(tokens)
    batch_s = (time.perf_counter() - t0) / len(tokens)
    one = _median_seconds(lambda i: tok.decode(tokens[i:i + 1]), timing_images)
    u8 = to_uint8(out)
    return {"sampler": "VQ-VAE (shipped, deterministic)", "steps": 1, "s_per_image": one, "batch_s_per_image": batch_s,
            "psnr": psnr(u8, originals), "ssim": ssim(u8, originals), "codebook_size": tok.config.codebook_size,
            "tokens": list(tokens.shape[1:]), "decoded": u8}


def run_world(work: Path, recipe: WorldRecipe, *, steps: Sequence[int], samplers: Sequence[str], ref_steps: int,
              eval_scenes: int, timing_images: int = 4, baseline: bool = True, grid_scenes: int = 4,
              grid_steps: Sequence[int] = GRID_STEPS, progress: bool = True) -> dict[str, Any]:
    """Train (or load) the world DiVAE, decode ``eval_scenes`` val scenes every way; rows, info, grid path."""
    from open4m.data.synthetic.world import render_world

    work.mkdir(parents=True, exist_ok=True)
    tok, info = world_divae(work, recipe, progress=progress)
    val = render_world("val", eval_scenes, recipe.image_size, workers=1, progress=False)
    originals = val.images["rgb"]
    x = torch.from_numpy(originals).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    tokens = tok.encode(x)
    grid_steps = [n for n in grid_steps if n in steps]
    rows, reference, kept = measure(tok, tokens, steps=steps, samplers=samplers, ref_steps=ref_steps,
                                    timing_images=timing_images, originals=originals,
                                    keep=[(s, n) for s in samplers for n in grid_steps])
    reference.update(psnr=psnr(kept["ref"], originals), ssim=ssim(kept["ref"], originals))
    base = None
    if baseline:
        try:
            base = vqvae_baseline(x, originals, timing_images)
        except Exception as e:  # noqa: BLE001 - the shipped bundle's layout is allowed to change under us
            base = {"sampler": "VQ-VAE (shipped)", "error": f"{type(e).__name__}: {e}"}
    columns = [("original", originals)]
    if base is not None and "decoded" in base:
        columns.append(("VQ-VAE", base.pop("decoded")))
    short = {"ddim/trailing": "DDIM", "ddpm/trailing": "DDPM-trail", "ddpm/leading": "DDPM-lead"}
    for s in samplers:
        columns += [(f"{short.get(s, s)} {n}", kept[(s, n)]) for n in grid_steps]
    grid = save_grid(work / "divae_steps.png", columns, grid_scenes)
    return {"rows": rows, "reference": reference, "baseline": base, "train": info, "eval_scenes": eval_scenes,
            "tokens": list(tokens.shape[1:]), "grid": str(grid)}


def save_grid(path: Path, columns: Sequence[tuple[str, np.ndarray]], n: int, scale: int = 2) -> Path:
    """A PNG: one row per scene, one labelled column per (label, (B, H, W, 3) uint8) entry."""
    from PIL import Image, ImageDraw

    n = min(n, len(columns[0][1]))
    h, w = columns[0][1].shape[1:3]
    cell_w, cell_h, head, gap = w * scale, h * scale, 14, 2
    canvas = Image.new("RGB", (len(columns) * (cell_w + gap) - gap, head + n * (cell_h + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for j, (label, images) in enumerate(columns):
        left = j * (cell_w + gap)
        draw.text((left + 2, 1), label, fill="black")
        for i in range(n):
            im = Image.fromarray(images[i]).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(im, (left, head + i * (cell_h + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    return path


# -- the run ---------------------------------------------------------------------------------------------
def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "nproc": nproc, "torch_threads": threads, "torch": torch.__version__,
            "load_avg": [round(v, 2) for v in os.getloadavg()], "date": date.today().isoformat()}


def _csv_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/open4m_divae_decode", help="the trained DiVAE, the PNG grid and the JSON")
    ap.add_argument("--parts", default="fixture,released,world", help="comma list of fixture, released, world")
    ap.add_argument("--steps", default=",".join(map(str, STEPS)))
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="scheduler/spacing, comma separated")
    ap.add_argument("--ref-steps", type=int, default=250, help="steps of the DDIM decode convergence is measured to")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for everything (training included)")
    ap.add_argument("--fixture", default=None, help="divae_rgb_tiny.safetensors (default: the shared fixtures)")
    ap.add_argument("--released-steps", type=int, default=3, help="steps timed at the released size")
    ap.add_argument("--eval-scenes", type=int, default=32, help="held-out val scenes of the world part")
    ap.add_argument("--timing-images", type=int, default=4, help="single-image decodes timed per setting (median)")
    ap.add_argument("--train-steps", type=int, default=WorldRecipe.steps)
    ap.add_argument("--train-scenes", type=int, default=WorldRecipe.train_scenes)
    ap.add_argument("--batch-size", type=int, default=WorldRecipe.batch_size)
    ap.add_argument("--dec-channels", type=int, default=WorldRecipe.dec_channels)
    ap.add_argument("--prediction", default=WorldRecipe.prediction_type, choices=["sample", "v_prediction", "epsilon"])
    ap.add_argument("--beta-schedule", default=WorldRecipe.beta_schedule)
    ap.add_argument("--no-baseline", action="store_true", help="skip the shipped VQ-VAE row")
    ap.add_argument("--grid-scenes", type=int, default=4)
    ap.add_argument("--json", default=None, help="also write every number here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"fixture", "released", "world"}
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}")
    steps, samplers = _csv_ints(args.steps), [s.strip() for s in args.samplers.split(",") if s.strip()]
    for s in samplers:
        parse_sampler(s)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = "python benchmarks/divae_decode.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    result: dict[str, Any] = {"machine": machine_info(args.threads), "command": command.strip(), "steps": steps,
                              "samplers": samplers, "ref_steps": args.ref_steps}
    m = result["machine"]
    print(f"config: {m['cpu']}, nproc={m['nproc']}, torch threads={m['torch_threads']}, torch {m['torch']}, "
          f"load {m['load_avg'][0]}, {m['date']}; fp32, seed 0, batch-1 times are medians of "
          f"{args.timing_images} single-image decodes")

    if "fixture" in parts:
        path = Path(args.fixture) if args.fixture else default_fixture()
        if not path.exists():
            print(f"\n[fixture] skipped: {path} not found (set OPEN4M_FIXTURES or --fixture)")
        else:
            t0 = time.perf_counter()
            fx = run_fixture(path, steps=steps, samplers=samplers, ref_steps=args.ref_steps)
            fx["seconds"] = time.perf_counter() - t0
            result["fixture"] = fx
            ref = fx["reference"]
            print(f"\n[1] official architecture ({fx['dec_type']}, {fx['decoder_params_M']:.2f} M decoder parameters, "
                  f"RANDOM weights) on {path.name}: {fx['images']} images at {fx['image_size']} px, "
                  f"{'x'.join(map(str, fx['tokens']))} tokens; schedule {fx['schedule']}")
            print("convergence to a DDIM decode of the same tokens, NOT quality (the weights are random)")
            print(fixture_table(fx["rows"], args.ref_steps))
            print(f"reference check: DDIM-{ref['check_steps']} vs DDIM-{ref['steps']}: RMSE {ref['check_rmse']:.3f} "
                  f"({ref['check_psnr']:.1f} dB)")

    if "released" in parts:
        rel = run_released(timed_steps=args.released_steps)
        result["released"] = rel
        print(f"\n[2] released decoder size ({rel['dec_type']}, {rel['decoder_params_M']:.1f} M parameters, random "
              f"weights) at {rel['image_size']} px, batch 1: {rel['s_per_step']:.2f} s per step "
              f"({rel['timed_steps']} steps timed after a 1-step warm-up)")
        print(released_table(rel, steps))

    if "world" in parts:
        recipe = WorldRecipe(steps=args.train_steps, train_scenes=args.train_scenes, batch_size=args.batch_size,
                             dec_channels=args.dec_channels, prediction_type=args.prediction,
                             beta_schedule=args.beta_schedule)
        t0 = time.perf_counter()
        wd = run_world(work, recipe, steps=steps, samplers=samplers, ref_steps=args.ref_steps,
                       eval_scenes=args.eval_scenes, timing_images=args.timing_images, baseline=not args.no_baseline,
                       grid_scenes=args.grid_scenes)
        wd["seconds"] = time.perf_counter() - t0
        result["world"] = wd
        tr, r = wd["train"], recipe
        print(f"\n[3] world DiVAE: ViT encoder (dim {r.enc_dim}, depth {r.enc_depth}), {r.codebook_size} codes x latent "
              f"{r.latent_dim}, {'x'.join(map(str, wd['tokens']))} tokens, compact UNet decoder (dec_type unet, "
              f"{r.dec_channels} ch x {list(r.dec_channel_mult)}, {tr['decoder_params_M']:.2f} M), {r.prediction_type}, "
              f"{r.beta_schedule} betas + zero terminal SNR, thresholding {r.thresholding}, clip {r.clip_sample}; "
              f"trained {r.steps} steps x batch {r.batch_size} on "
              f"{r.train_scenes} world train scenes at {r.image_size} px, AdamW lr {r.lr} (warmup {r.warmup}, cosine), "
              f"EMA {r.ema_decay}: {tr['train_s'] / 60:.1f} min on {tr['threads']} thread(s)"
              f"{' (cached from ' + tr['trained_on'] + ')' if tr.get('cached') else ''}")
        print(f"{wd['eval_scenes']} held-out val scenes; PSNR of the pooled MSE of uint8 images, SSIM 11x11 Gaussian")
        rows = list(wd["rows"])
        base = wd["baseline"]
        if base is not None and "error" not in base:
            rows.append(base)
        print(world_table(rows, args.ref_steps, wd["eval_scenes"]))
        ref = wd["reference"]
        print(f"reference DDIM-{ref['steps']}: PSNR {ref['psnr']:.2f} dB, SSIM {ref['ssim']:.3f}; "
              f"DDIM-{ref['check_steps']} vs it: {ref['check_psnr']:.1f} dB")
        if base is not None and "error" in base:
            print(f"VQ-VAE baseline skipped: {base['error']}")
        print(f"grid: {wd['grid']}")

    result["seconds"] = time.perf_counter() - started
    text = json.dumps(result, indent=1, default=str)
    (work / "divae_decode.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    print(f"\ntotal {result['seconds']:.0f} s; numbers in {work / 'divae_decode.json'}")


if __name__ == "__main__":
    main()
