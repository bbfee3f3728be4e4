"""Training tokenizers from scratch: VQ-VAE, DiVAE and bottleneck-MLP VQ.

One loop for all three: AdamW with linear warmup then cosine decay, gradient clipping, an
exponential moving average of the weights (the EMA is what gets exported, as in 4M), bf16
autocast on accelerators that support it, codebook usage/perplexity in the logs, PNG grids of
input | reconstruction, and resume (weights, EMA, optimizer, step) from ``checkpoint.safetensors``.

Losses follow 4M: MSE or smooth-L1 for continuous images, cross-entropy for class maps, cosine
for vectors and feature maps; the quantizer's commitment loss is added with ``codebook_weight``.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch.utils.data import DataLoader, Dataset

from .checkpoint import write_safetensors
from .config import DiVAEConfig, VQVAEConfig
from .vq import QuantizerOutput, codebook_stats
from .vqvae import VQVAE, VQTokenizer

# The folder dataset tokenizer training reads is `open4m.sources.images.ImageFiles` (`images:DIR`).
__all__ = ["TrainConfig", "build_tokenizer", "train_tokenizer", "reconstruction_loss"]

_LOSSES = ("mse", "l1", "smooth_l1", "cross_entropy", "cosine")


@dataclass
class TrainConfig:
    """How to train; the model itself is described by a VQVAEConfig / DiVAEConfig."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0 disables the weight EMA
    loss: str | None = None  # default: cross_entropy for class maps, cosine for vectors, else mse
    codebook_weight: float = 1.0
    log_every: int = 50
    sample_every: int = 500  # PNG grids of input | reconstruction (0: never)
    save_every: int = 500
    seed: int = 0
    num_workers: int = 0
    device: str = "cpu"
    bf16: bool = True  # used only where the device supports it

    def __post_init__(self) -> None:
        if self.loss is not None and self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {self.loss!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")


def build_tokenizer(kind: str, model_config: dict[str, Any]) -> VQTokenizer:
    """``vqvae`` / ``mlp`` / ``divae`` + config fields -> an untrained tokenizer."""
    if kind in ("vqvae", "mlp"):
        cfg = VQVAEConfig(**model_config)
        if kind == "mlp" and not cfg.is_mlp:
            raise ValueError("--kind mlp needs enc_type/dec_type like 'BottleneckMLP/B_6-Wi_1024'")
        return VQVAE(cfg)
    if kind == "divae":
        from .divae import DiVAE

        return DiVAE(DiVAEConfig(**model_config))
    raise ValueError(f"unknown tokenizer kind {kind!r}: use vqvae, divae or mlp (text has its own trainer)")


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


def _default_loss(model: VQTokenizer) -> str:
    kind = model.preprocessor.input
    return {"class_map": "cross_entropy", "vector": "cosine", "features": "cosine"}.get(kind, "mse")


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def _metrics(model: VQTokenizer, pred: torch.Tensor, target: torch.Tensor, q: QuantizerOutput) -> dict[str, float]:
    out = codebook_stats(q.indices, model.config.codebook_size).as_dict()
    kind = model.preprocessor.input
    with torch.no_grad():
        if kind == "class_map":
            labels = pred.argmax(1)
            ious = []
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


def _step(model: VQTokenizer, batch: torch.Tensor, loss_kind: str, cfg: TrainConfig,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, QuantizerOutput, dict[str, float]]:
    from .divae import DiVAE

    if isinstance(model, DiVAE):
        recon_loss, pred, q = model.training_loss(batch, generator=gen)
    else:
        pred, q = model(batch)
        recon_loss = reconstruction_loss(loss_kind, pred.float(), batch.to(pred.device))
    loss = recon_loss + cfg.codebook_weight * q.loss
    return loss, pred, q, {"recon_loss": float(recon_loss.detach()), "code_loss": float(q.loss.detach())}


def _cycle(loader: DataLoader) -> Iterator[torch.Tensor]:
    while True:
        yield from loader


def _ema_update(ema: VQTokenizer, model: VQTokenizer, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)  # codebook statistics are already running averages


def _save_training_state(path: Path, model: VQTokenizer, ema: VQTokenizer | None, opt: torch.optim.Optimizer,
                         step: int, cfg: TrainConfig) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            tensors[f"optim.{pid}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    meta = {"step": str(step), "train_config": json.dumps(asdict(cfg)),
            "param_groups": json.dumps(opt_state["param_groups"]), "model_config": json.dumps(asdict(model.config))}
    write_safetensors(path, tensors, meta)


def _load_training_state(path: Path, model: VQTokenizer, ema: VQTokenizer | None, opt: torch.optim.Optimizer) -> int:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"])


def _save_grid(path: Path, model: VQTokenizer, inputs: torch.Tensor, recon: torch.Tensor) -> None:
    """Rows of input | reconstruction as one PNG."""
    from PIL import Image

    pre = model.preprocessor
    if pre.input == "vector":
        return

    def to_rgb(t: torch.Tensor, is_logits: bool) -> np.ndarray:
        if pre.input == "class_map":
            ids = t.argmax(1) if is_logits else t
            palette = np.random.default_rng(0).integers(0, 256, (max(model.config.n_labels or 1, 1), 3), dtype=np.uint8)
            return palette[ids.cpu().numpy().clip(0, len(palette) - 1)]
        if pre.input == "image":
            return pre.to_numpy(t)[..., :3] if t.shape[1] >= 3 else np.repeat(pre.to_numpy(t), 3, axis=-1)
        g = t[:, :1].float().cpu()
        lo, hi = g.amin((1, 2, 3), keepdim=True), g.amax((1, 2, 3), keepdim=True)
        g = ((g - lo) / (hi - lo).clamp_min(1e-8) * 255).to(torch.uint8)
        return g.permute(0, 2, 3, 1).repeat(1, 1, 1, 3).numpy()

    a, b = to_rgb(inputs, False), to_rgb(recon.detach(), True)
    rows = [np.concatenate([x, y], axis=1) for x, y in zip(a, b)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def train_tokenizer(model: VQTokenizer, dataset: Dataset, cfg: TrainConfig, out_dir: str | Path,
                    *, resume: bool = True, progress: bool = True) -> dict[str, list[float]]:
    """Train ``model`` on ``dataset`` (samples in model form); write checkpoints, PNGs and the final
    (EMA) tokenizer to ``out_dir/tokenizer``. Returns the logged history."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model.to(device).train()
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "pos_emb" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.99))
    ckpt = out / "checkpoint.safetensors"
    start = _load_training_state(ckpt, model, ema, opt) if resume and ckpt.exists() else 0
    loss_kind = cfg.loss or _default_loss(model)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=len(dataset) >= cfg.batch_size,
                        num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed + start))
    use_bf16 = cfg.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported()
    history: dict[str, list[float]] = {"step": [], "loss": []}
    batches = _cycle(loader)
    bar = tqdm(range(start, cfg.steps), desc="train-tokenizer", disable=not progress, initial=start, total=cfg.steps)
    for step in bar:
        batch = next(batches).to(device)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, pred, q, parts = _step(model, batch, loss_kind, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if ema is not None:
            _ema_update(ema, model, cfg.ema_decay)
        history["step"].append(step)
        history["loss"].append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            target = batch if model.preprocessor.input != "class_map" else batch.long()
            logged = {**parts, **_metrics(model, pred.float(), target, q), "lr": _lr_at(step, cfg)}
            for k, v in logged.items():
                history.setdefault(k, []).append(v)
            bar.set_postfix(loss=f"{loss.item():.4f}", usage=f"{logged['codebook_usage']:.2f}")
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps({"step": step + 1, "loss": loss.item(), **logged}) + "\n")
        if cfg.sample_every and ((step + 1) % cfg.sample_every == 0 or step + 1 == cfg.steps):
            _save_grid(out / "samples" / f"step_{step + 1:07d}.png", model, batch[:8].cpu(), pred[:8].float().cpu())
        if cfg.save_every and ((step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps):
            _save_training_state(ckpt, model, ema, opt, step + 1, cfg)
    final = ema if ema is not None else model
    final.eval().save_pretrained(out / "tokenizer")
    return history
