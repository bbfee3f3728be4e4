"""Tokenizer training (`open4m train-tokenizer`): VQ-VAE, DiVAE and bottleneck-MLP VQ from scratch.

The task supplies the tokenizer, batches of one modality's files in model form, the loss and the
export; the engine runs it (AdamW, warmup + cosine, clipping, the weight EMA that 4M exports,
exact resume). Losses follow 4M: MSE or smooth-L1 for continuous images, cross-entropy for class
maps, cosine for vectors and feature maps, the diffusion objective for a DiVAE, plus the
quantizer's commitment loss times ``objective.codebook_weight``. Logged: reconstruction and code
losses, codebook usage and perplexity, PSNR / mIoU / cosine; PNG grids of input | reconstruction.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...atomic import save_image
from ...config import load, option, section
from ...errors import CheckpointError, ConfigError
from ..engine import LogSection, OptimSection, RunSection, StepOutput, Task, TrainResult, run
from ..distributed import unwrap

__all__ = ["TokenizerRecipe", "TokenizerTask", "train_tokenizer", "load_recipe", "build_tokenizer",
           "reconstruction_loss", "KINDS", "LOSSES"]

KINDS = ("vqvae", "divae", "mlp")
LOSSES = ("mse", "l1", "smooth_l1", "cross_entropy", "cosine")


@dataclass
class DataSection:
    path: str | None = option(None, "Folder of one modality's files, searched recursively: images, 16-bit depth PNGs, "
                                    ".npy arrays (relative to the recipe file).", path=True)
    modality: str | None = option(None, "Registry name (depth, rgb, semseg_coco, ...): fills n_channels / n_labels.")
    image_size: int | None = option(None, "Resize samples to this (default: the tokenizer's image_size).")
    batch_size: int = option(16, "Samples per step.")
    num_workers: int = option(0, "DataLoader worker processes.")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("data.batch_size must be >= 1")


@dataclass
class ObjectiveSection:
    loss: str | None = option(None, "Reconstruction loss: mse, l1, smooth_l1, cross_entropy, cosine (default: "
                                    "cross_entropy for class maps, cosine for vectors and feature maps, else mse).")
    codebook_weight: float = option(1.0, "Weight of the quantizer's commitment loss.")
    sample_every: int = option(500, "PNG grids of input | reconstruction every N steps into out_dir/samples (0: never).")

    def __post_init__(self) -> None:
        if self.loss is not None and self.loss not in LOSSES:
            raise ConfigError(f"objective.loss={self.loss!r}: use one of {', '.join(LOSSES)}")


@dataclass
class TokenizerOptim(OptimSection):
    lr: float | None = option(1e-4, "Absolute peak learning rate (null: blr x batch / 256).")
    warmup: float = option(100, "Linear warmup steps.")
    betas: list = option([0.9, 0.99], "AdamW betas.")
    clip_grad: float | None = option(1.0, "Clip the global gradient norm to this (null: no clipping).")


@dataclass
class TokenizerRun(RunSection):
    steps: int = option(1000, "Optimizer steps.")
    out_dir: str = option("runs/tokenizer", "Run folder: checkpoints, samples, logs and the trained `tokenizer/` (in a "
                                            "recipe file: relative to the file).", path=True)
    ema_decay: float | None = option(0.999, "EMA of the weights; the EMA is what gets exported, as in 4M (null: off).")
    eval_every: int = option(0, "Unused: tokenizer runs report reconstruction metrics on the training batches.")


@dataclass
class TokenizerLog(LogSection):
    every: int = option(50, "Log scalars (and reconstruction metrics) every N steps.")


@dataclass
class TokenizerRecipe:
    """`open4m train-tokenizer RECIPE.yaml`: kind, model (tokenizer config fields), data, objective, optim, train, log."""

    command: ClassVar[str] = "train-tokenizer"
    # The flat `train:` section of recipes written before the one training engine: still read, with a warning.
    renamed: ClassVar[dict[str, str]] = {
        "train.batch_size": "data.batch_size", "train.num_workers": "data.num_workers",
        "train.lr": "optim.lr", "train.min_lr": "optim.min_lr", "train.weight_decay": "optim.weight_decay",
        "train.warmup_steps": "optim.warmup", "train.grad_clip": "optim.clip_grad",
        "train.loss": "objective.loss", "train.codebook_weight": "objective.codebook_weight",
        "train.sample_every": "objective.sample_every", "train.log_every": "log.every",
    }

    kind: str | None = option(None, "vqvae, divae or mlp (the bottleneck-MLP VQ).")
    model: dict = option({}, "Tokenizer config fields (see open4m.tokenizers.config: enc_type, codebook_size, ...).")
    data: DataSection = section(DataSection, "The files to train on.")
    objective: ObjectiveSection = section(ObjectiveSection, "Loss and sample images.")
    optim: TokenizerOptim = section(TokenizerOptim, "AdamW and the LR schedule.")
    train: TokenizerRun = section(TokenizerRun, "Run length, EMA, checkpoints, device.")
    log: TokenizerLog = section(TokenizerLog, "Progress, TensorBoard, W&B.")

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r}: use one of {', '.join(KINDS)} (text tokenizers train with --kind text)")


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TokenizerRecipe:
    return load(TokenizerRecipe, path, overrides, command="train-tokenizer")


def build_tokenizer(kind: str, model_config: Mapping[str, Any]) -> nn.Module:
    """``vqvae`` / ``mlp`` / ``divae`` + config fields -> an untrained tokenizer."""
    from ...tokenizers import DiVAE, DiVAEConfig, VQVAE, VQVAEConfig

    config_cls = DiVAEConfig if kind == "divae" else VQVAEConfig
    if kind not in KINDS:
        raise ConfigError(f"unknown tokenizer kind {kind!r}: use vqvae, divae or mlp (text has its own trainer)")
    known = [f.name for f in dataclasses.fields(config_cls)]
    for key in model_config:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            hint = f"; did you mean 'model.{close[0]}'?" if close else ""
            raise ConfigError(f"unknown {kind} tokenizer key 'model.{key}'{hint} (open4m.tokenizers.config."
                              f"{config_cls.__name__} lists them all)")
    try:
        cfg = config_cls(**model_config)
    except TypeError as err:
        raise ConfigError(f"model: {err} (valid keys: see open4m.tokenizers.config.{config_cls.__name__})") from None
    if kind == "mlp" and not cfg.is_mlp:
        raise ConfigError("kind mlp needs enc_type/dec_type like 'BottleneckMLP/B_6-Wi_1024'")
    return DiVAE(cfg) if kind == "divae" else VQVAE(cfg)


def reconstruction_loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "cross_entropy":
        return F.cross_entropy(pred, target.long())
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred, target, dim=1)).mean()
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    return F.mse_loss(pred, target)


def _default_loss(model: nn.Module) -> str:
    return {"class_map": "cross_entropy", "vector": "cosine", "features": "cosine"}.get(model.preprocessor.input, "mse")


def _metrics(model: nn.Module, pred: torch.Tensor, target: torch.Tensor, indices: torch.Tensor) -> dict[str, float]:
    from ...tokenizers.vq import codebook_stats

    out = codebook_stats(indices, model.config.codebook_size).as_dict()
    kind = model.preprocessor.input
    with torch.no_grad():
        if kind == "class_map":
            labels, ious = pred.argmax(1), []
            for c in torch.unique(torch.cat([labels.unique(), target.unique()])):
                inter = ((labels == c) & (target == c)).sum()
                union = ((labels == c) | (target == c)).sum()
                ious.append(float(inter) / max(float(union), 1.0))
            out["miou"] = float(np.mean(ious)) if ious else 0.0
        elif kind in ("vector", "features"):
            out["cosine"] = float(F.cosine_similarity(pred.float(), target.float(), dim=1).mean())
        else:
            mse = float(F.mse_loss(pred.float(), target.float()))
            value_range = 2.0 if kind == "image" else float(target.max() - target.min()) or 1.0
            out["mse"] = mse
            out["psnr"] = 10 * math.log10(value_range**2 / max(mse, 1e-12))
    return out


class TokenizerTask(Task):
    """Train one tokenizer on a folder (or any map-style dataset of model-form samples)."""

    name = "tokenizer"

    def __init__(self, recipe: TokenizerRecipe, dataset: Any = None, model: nn.Module | None = None) -> None:
        self.recipe, self.dataset, self._given = recipe, dataset, model

    def setup(self, info: Any) -> str:
        from ...sources import ImageFiles

        r = self.recipe
        if self._given is not None:
            self.model = self._given
        else:
            if r.kind is None:
                raise ConfigError("choose a tokenizer kind: kind: vqvae | divae | mlp in the recipe, or --kind")
            self.model = build_tokenizer(r.kind, r.model)
        if self.dataset is None:
            if r.data.path is None:
                raise ConfigError("data.path is not set: give the folder of files to train on (--data DIR)")
            self.dataset = ImageFiles(r.data.path, self.model, r.data.image_size)
            self.dataset[0]  # a folder none of whose files can be read (or fit the tokenizer) fails before any write
        self.loss_kind = r.objective.loss or _default_loss(self.model)
        kind = type(self.model).__name__
        return f"{kind} tokenizer ({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters) on " \
               f"{len(self.dataset)} samples, {self.loss_kind} loss"

    def global_batch(self, info: Any, accum: int) -> int:
        return self.recipe.data.batch_size * accum * info.world

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Decay matrices; never biases, norms or positional tables."""
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "pos_emb" in name else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def batches(self, start: int, stop: int, info: Any, accum: int) -> Iterator[Any]:
        from ...sources import sample_batches

        d, seed = self.recipe.data, self.recipe.train.seed
        return sample_batches(self.dataset, d.batch_size, seed, start=start, stop=stop, rank=info.rank,
                              world=info.world, accum=accum, num_workers=d.num_workers)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> StepOutput:
        from ...tokenizers import DiVAE

        batch = batch.to(device)
        if isinstance(unwrap(model), DiVAE):
            # the denoising loss (DiVAE.forward); its timesteps and noise come from torch's RNG, which
            # checkpoints save and restore
            recon, pred, q = model(batch)
        else:
            pred, q = model(batch)
            recon = reconstruction_loss(self.loss_kind, pred.float(), batch)
        loss = recon + self.recipe.objective.codebook_weight * q.loss
        one = torch.ones((), device=device)
        self._last = (batch, pred.detach(), q.indices.detach())
        return StepOutput(loss, {"recon_loss": (recon.detach(), one), "code_loss": (q.loss.detach(), one)})

    def on_log(self, step: int, run_dir: Path | None, batch: Any, output: StepOutput) -> dict[str, float]:
        x, pred, indices = self._last
        target = x.long() if self.model.preprocessor.input == "class_map" else x
        every = self.recipe.objective.sample_every
        if run_dir is not None and every and (step % every == 0 or step == self.recipe.train.steps):
            _save_grid(run_dir / "samples" / f"step_{step:07d}.png", self.model, x[:8].cpu(), pred[:8].float().cpu())
        return _metrics(self.model, pred.float(), target, indices)

    def export(self, model: nn.Module, ema: Any, run_dir: Path) -> Path:
        final = model
        if ema is not None:
            final = copy.deepcopy(model)
            ema.copy_to(final)
        return final.eval().save_pretrained(run_dir / "tokenizer")

    def summary(self, records: list[dict[str, Any]]) -> str:
        train = [r for r in records if "train/loss" in r]
        if not train:
            return "no training steps were logged"
        keys = [k for k in ("train/loss", "train/recon_loss", "train/psnr", "train/miou", "train/cosine",
                            "train/codebook_usage") if k in train[-1]]
        lines = [f"{k:22s} {train[0].get(k, float('nan')):10.4f} -> {train[-1][k]:10.4f}" for k in keys]
        return "\n".join(lines + skipped_files(getattr(self.dataset, "corrupt", {})))


def skipped_files(corrupt: Mapping[Any, str], show: int = 3) -> list[str]:
    """Summary lines for the unreadable files a run skipped (counted, the first few named); [] when none.
    Counts come from this process: files skipped inside DataLoader workers are only in their log lines."""
    if not corrupt:
        return []
    named = ", ".join(str(p) for p in list(corrupt)[:show]) + (", ..." if len(corrupt) > show else "")
    return [f"skipped {len(corrupt)} unreadable file(s): {named} (replace or delete them)"]


def _save_grid(path: Path, model: nn.Module, inputs: torch.Tensor, recon: torch.Tensor) -> None:
    """Rows of input | reconstruction as one PNG."""
    from PIL import Image

    from ...data.visualize import class_colors

    pre = model.preprocessor
    if pre.input == "vector":
        return

    def to_rgb(t: torch.Tensor, is_logits: bool) -> np.ndarray:
        if pre.input == "class_map":
            ids = (t.argmax(1) if is_logits else t).cpu().numpy()
            return class_colors(max(int(model.config.n_labels or 1), 256))[ids.clip(0, None)]
        if pre.input == "image":
            return pre.to_numpy(t)[..., :3] if t.shape[1] >= 3 else np.repeat(pre.to_numpy(t), 3, axis=-1)
        g = t[:, :1].float().cpu()
        lo, hi = g.amin((1, 2, 3), keepdim=True), g.amax((1, 2, 3), keepdim=True)
        g = ((g - lo) / (hi - lo).clamp_min(1e-8) * 255).to(torch.uint8)
        return g.permute(0, 2, 3, 1).repeat(1, 1, 1, 3).numpy()

    a, b = to_rgb(inputs, False), to_rgb(recon, True)
    rows = [np.concatenate([x, y], axis=1) for x, y in zip(a, b)]
    save_image(Image.fromarray(np.concatenate(rows, axis=0)), path)


def convert_legacy_checkpoint(run_dir: Path, task: TokenizerTask) -> Path | None:
    """An ``OUT/checkpoint.safetensors`` of the tokenizer trainer before the single engine, rewritten as an engine
    checkpoint (same weights, EMA, optimizer moments and step), so such a run resumes where it stopped."""
    from safetensors import safe_open

    from .. import checkpointing
    from ..distributed import DistInfo
    from ..ema import EMA
    from ..optim import build_adamw

    legacy = Path(run_dir) / "checkpoint.safetensors"
    if not legacy.is_file() or checkpointing.checkpoints(run_dir):
        return None
    try:
        with safe_open(str(legacy), framework="pt") as f:
            meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        step = int(meta["step"])
        groups = json.loads(meta["param_groups"])
    except Exception as err:  # any unreadable legacy file: say what to do instead of resuming wrongly
        raise CheckpointError(f"{legacy} is not a readable tokenizer checkpoint ({err}); delete it or train with "
                              "train.resume=false") from None
    model = task.model
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer = build_adamw(task.param_groups(task.recipe.optim.weight_decay), 1.0)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    ema = None
    if any(k.startswith("ema.") for k in tensors) and task.recipe.train.ema_decay is not None:
        ema = EMA(model, task.recipe.train.ema_decay)
        ema.load_state_dict({k[4:]: v.float() if v.is_floating_point() else v
                             for k, v in tensors.items() if k.startswith("ema.")})
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    return checkpointing.save_checkpoint(run_dir, step, model=model, optimizer=optimizer, ema=ema, info=info,
                                         keep_last=task.recipe.train.keep_last,
                                         state={"global_batch": task.recipe.data.batch_size})


def train_tokenizer(recipe: TokenizerRecipe, *, dataset: Any = None, model: nn.Module | None = None) -> TrainResult:
    """Train a tokenizer; ``dataset`` (model-form samples) and ``model`` replace the recipe's folder and
    ``kind``/``model`` (how the world recipe trains its tokenizers on arrays in memory)."""
    task = TokenizerTask(recipe, dataset, model)
    if recipe.train.resume and (Path(recipe.train.out_dir) / "checkpoint.safetensors").is_file():
        task.setup(None)
        convert_legacy_checkpoint(Path(recipe.train.out_dir), task)
    return run(task, recipe.optim, recipe.train, recipe.log, recipe)
