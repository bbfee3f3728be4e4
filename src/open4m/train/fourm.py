"""The FourM pre-training / fine-tuning loop: one function, `train(config)`.

Each optimizer step: `accum_steps` micro-batches per rank (autocast forward, scaled backward,
DDP gradient sync on the last), gradient clipping, the scheduled learning rate, AdamW, the EMA.
Everything a step depends on — weights, optimizer moments, EMA, step/token counters, the data
position and the RNG — is in the checkpoint, so a killed run resumes bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .. import modalities
from ..data.batches import batch_loader, build_masker
from ..model import FourM, FourMConfig, LossOutput, load_config, preset
from ..model.checkpoint import load_state_dict_into, read_safetensors, resolve_checkpoint
from ..sources import build_recipe_sources
from . import checkpointing, distributed
from .config import ModelSection, TrainConfig, save_config
from .ema import EMA
from .lora import add_lora, is_lora_parameter, merge_lora
from .monitor import Monitor, read_metrics, summary_table
from .optim import build_adamw
from .schedule import lr_at, peak_lr

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    run_dir: Path
    model_path: Path | None
    steps: int
    tokens: int
    metrics: list[dict[str, Any]]
    summary: str


# ------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------
def build_model(section: ModelSection, data_modalities: list[str], image_size: int,
                input_only: list[str] = (), target_only: list[str] = ()) -> tuple[FourM, str]:
    """The FourM of a recipe, with `init_from` weights and frozen prefixes applied; plus a report line."""
    if "domains_in" in section.arch or "domains_out" in section.arch:
        raise ValueError("set model.domains_in / model.domains_out, not inside model.arch")
    mods = modalities.get_many(data_modalities)
    domains_in = section.domains_in or [m for m in data_modalities if mods[m].encoder and m not in target_only]
    domains_out = section.domains_out or [m for m in data_modalities if mods[m].decoder and m not in input_only]
    arch = {"image_size": image_size, **section.arch, "domains_in": domains_in, "domains_out": domains_out}
    if section.preset is not None:
        cfg, name = preset(section.preset, **arch), section.preset
    elif section.init_from:
        cfg, name = FourMConfig.from_dict({**load_config(section.init_from).to_dict(), **arch}), "from init_from"
    else:
        raise ValueError("model.preset is null: give a preset name or model.init_from to take the architecture from")
    model = FourM(cfg)
    report = f"FourM {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)"
    if section.init_from:
        weights, _ = resolve_checkpoint(section.init_from)
        state, _ = read_safetensors(weights)
        load_state_dict_into(model, state, strict=False)
        fresh = [k for k in model.state_dict() if k not in state and not k.endswith("pos_emb")]
        new_mods = sorted({k.split(".")[1] for k in fresh if k.startswith(("encoder_embeddings.", "decoder_embeddings."))})
        report += f"; started from {section.init_from}" + (f", new embeddings for {new_mods}" if new_mods else "")
    if section.lora_rank is not None:
        adapted = add_lora([model.encoder, model.decoder], section.lora_rank, section.lora_alpha, section.lora_targets)
        report += f"; LoRA rank {section.lora_rank} on {adapted} layers"
    if section.freeze:
        names = [n for n, _ in model.named_parameters() if not is_lora_parameter(n)]
        for prefix in section.freeze:
            hit = [n for n in names if n == prefix or n.startswith(prefix + ".")]
            if not hit:
                raise ValueError(f"model.freeze entry {prefix!r} matches no parameter; use prefixes like encoder, "
                                 f"decoder, encoder_embeddings.rgb@224")
            for p in (p for n, p in model.named_parameters() if n in hit):
                p.requires_grad_(False)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        report += f"; {frozen / 1e6:.2f} M frozen"
    model.set_activation_checkpointing(section.activation_checkpointing)
    return model, report


# ------------------------------------------------------------------------------------------
# Steps
# ------------------------------------------------------------------------------------------
def _to_device(batch: dict, device: torch.device) -> dict:
    return {m: {k: v.to(device, non_blocking=True) for k, v in d.items()} for m, d in batch.items()}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for `precision` (fp32: none); shared by pre-training and fine-tuning."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


class _Stepper:
    """Forward/backward/update of one optimizer step; returns mean loss per modality."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                 info: distributed.DistInfo, ema: EMA | None) -> None:
        self.model, self.optimizer, self.cfg, self.info, self.ema = model, optimizer, cfg, info, ema
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.train.precision == "fp16")
        self.params = [p for p in model.parameters() if p.requires_grad]

    def forward(self, batch: dict) -> LossOutput:
        d = self.cfg.data
        with autocast(self.info.device, self.cfg.train.precision):
            return self.model(_to_device(batch, self.info.device), d.input_tokens, d.target_tokens,
                              loss_type=self.cfg.train.loss_type, validate=False)

    def step(self, batches: Iterator[dict], lr: float) -> tuple[dict[str, float], float]:
        accum = self.cfg.data.accum_steps
        tally = _Tally()
        for micro in range(accum):
            sync = micro == accum - 1 or not hasattr(self.model, "no_sync")
            with contextlib.nullcontext() if sync else self.model.no_sync():
                out = self.forward(next(batches))
                self.scaler.scale(out.loss / accum).backward()
            tally.add(out)
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.clip_grad
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip is not None else math.inf)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(distributed.unwrap(self.model))
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        return tally.means(self.info), float(norm)

    @torch.no_grad()
    def evaluate(self, batches: Iterator[dict], count: int) -> dict[str, float]:
        self.model.eval()
        tally = _Tally()
        for _ in range(count):
            tally.add(self.forward(next(batches)))
        self.model.train()
        return tally.means(self.info)


class _Tally:
    """Loss means over micro-batches and ranks, accumulated on the device; `means` syncs once.

    The total ("all") is the mean over micro-batches. A modality's loss is the mean over the
    micro-batches (and ranks) in which the model predicted some of its tokens
    (`LossOutput.num_targets > 0`); elsewhere it reports a loss of 0 that would drag its mean down.
    Nothing here reads a value on the host until `means`.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, out: LossOutput) -> None:
        loss = out.loss.detach().float()
        self._add("all", loss, torch.ones_like(loss))
        for name, value in out.per_modality.items():
            present = out.num_targets[name] > 0
            self._add(name, torch.where(present, value.detach().float(), 0.0), present.to(loss.dtype))

    def _add(self, name: str, value: torch.Tensor, count: torch.Tensor) -> None:
        self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.counts[name] = self.counts[name] + count if name in self.counts else count

    def means(self, info: distributed.DistInfo) -> dict[str, float]:
        names = list(self.sums)
        stacked = torch.stack([torch.stack([self.sums[n] for n in names]), torch.stack([self.counts[n] for n in names])])
        sums, counts = distributed.mean_across_ranks(stacked, info).tolist()  # the one host sync
        return {n: s / c for n, s, c in zip(names, sums, counts) if c > 0}


def _scalars(prefix: str, losses: dict[str, float]) -> dict[str, float]:
    return {(f"{prefix}/loss" if k == "all" else f"{prefix}/loss/{k}"): v for k, v in losses.items()}


# ------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) the recipe `cfg`; under torchrun every rank calls this."""
    info = distributed.init_distributed(cfg.train.device)
    try:
        return _train(cfg, info)
    finally:
        distributed.shutdown(info)


def _train(cfg: TrainConfig, info: distributed.DistInfo) -> TrainResult:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if (cfg.train.ema_decay is not None or cfg.model.lora_rank is not None) and cfg.train.distributed == "fsdp" \
            and info.enabled:
        raise ValueError("train.ema_decay and model.lora_rank are not supported with train.distributed=fsdp; use ddp")
    run_dir = Path(cfg.train.out_dir)
    d, t = cfg.data, cfg.train
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    global_batch = d.batch_size * d.accum_steps * info.world
    peak = peak_lr(cfg.optim.blr, global_batch, cfg.optim.lr)
    tokens_per_step = global_batch * (d.input_tokens + d.target_tokens)
    total = t.tokens if t.tokens is not None else t.steps
    total_steps = math.ceil(t.tokens / tokens_per_step) if t.tokens is not None else t.steps
    lr_at(0, total, peak, cfg.optim.warmup, cfg.optim.min_lr)  # a bad schedule fails before any work

    # the source first: the world source registers its modalities, which the masker then looks up
    source, val_source = build_recipe_sources(d, seed=t.seed)
    masker = build_masker(d.mixture, d.modalities, alpha=d.alpha, input_tokens=d.input_tokens,
                          target_tokens=d.target_tokens, image_size=d.image_size, input_only=d.input_only,
                          target_only=d.target_only, allow_missing=bool(d.sources))

    torch.manual_seed(t.seed)
    model, report = build_model(cfg.model, d.modalities, d.image_size, d.input_only, d.target_only)
    model.to(info.device).train()
    ema = EMA(model, t.ema_decay) if t.ema_decay is not None else None
    wrapped = distributed.wrap(model, t.distributed, info)  # before the optimizer: FSDP2 swaps in sharded parameters
    optimizer = build_adamw(model, peak, cfg.optim.weight_decay, tuple(cfg.optim.betas), cfg.optim.eps, cfg.optim.fused)
    if cfg.model.compile:
        wrapped = torch.compile(wrapped)
    stepper = _Stepper(wrapped, optimizer, cfg, info, ema)

    step = tokens = 0
    latest = checkpointing.latest_checkpoint(run_dir) if t.resume else None
    if latest is not None:
        state = checkpointing.load_checkpoint(latest, model=wrapped, optimizer=optimizer, ema=ema, info=info)
        if state["global_batch"] != global_batch:
            raise ValueError(f"{latest} was trained with a global batch of {state['global_batch']}, now {global_batch}; "
                             f"keep batch_size x accum_steps x ranks equal to resume, or set train.resume=false")
        step, tokens = state["step"], state["tokens"]
        if state.get("scaler"):
            stepper.scaler.load_state_dict(state["scaler"])
        report += f"; resumed from {latest.name}"

    batches = batch_loader(source, masker, d.batch_size, t.seed, start=step * d.accum_steps,
                           stop=total_steps * d.accum_steps, rank=info.rank, world=info.world,
                           accum=d.accum_steps, num_workers=d.num_workers, pin_memory=info.device.type == "cuda")
    monitor = Monitor(run_dir, total_steps=total_steps, start_step=step, enabled=info.is_main,
                      progress=cfg.log.progress, tensorboard=cfg.log.tensorboard, wandb=cfg.log.wandb,
                      wandb_project=cfg.log.wandb_project, run_name=cfg.log.run_name, config=cfg.to_dict())
    if info.is_main:
        print(f"{report}; {info.world} rank(s), global batch {global_batch}, peak lr {peak:.3g}, "
              f"{total_steps} steps, {tokens_per_step:,} tokens/step -> {run_dir}")

    def validate() -> None:
        if val_source is None or t.eval_batches < 1:
            return
        val_batches = batch_loader(val_source, masker, d.batch_size, t.seed, rank=info.rank, world=info.world,
                                   shuffle=False, stop=t.eval_batches)
        monitor.log(step, tokens, _scalars("val", stepper.evaluate(val_batches, t.eval_batches)))

    def save() -> None:
        checkpointing.save_checkpoint(run_dir, step, model=wrapped, optimizer=optimizer, ema=ema, info=info,
                                      keep_last=t.keep_last,
                                      state={"tokens": tokens, "global_batch": global_batch,
                                             "samples_seen": step * global_batch,
                                             "scaler": stepper.scaler.state_dict()})

    try:
        while step < total_steps:
            progress = tokens if t.tokens is not None else step
            lr = lr_at(progress, total, peak, cfg.optim.warmup, cfg.optim.min_lr)
            losses, grad_norm = stepper.step(batches, lr)
            step += 1
            tokens += tokens_per_step
            if not all(math.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"step {step}: non-finite loss {losses}; lower optim.blr or use bf16/fp32")
            if step % cfg.log.every == 0 or step == total_steps or step == 1:
                monitor.log(step, tokens, {**_scalars("train", losses), "train/lr": lr, "train/grad_norm": grad_norm})
            monitor.advance()
            if t.eval_every and step % t.eval_every == 0 and step < total_steps:
                validate()
            if step % t.save_every == 0 and step < total_steps:
                save()
        validate()
        save()
        distributed.check_in_sync(wrapped, info)
        merge_lora(model)  # the export is a plain FourM; the checkpoints above keep the adapters
        model_path = checkpointing.export_model(wrapped, run_dir / "model.safetensors", info)
        if ema is not None:
            checkpointing.export_model(wrapped, run_dir / "model_ema.safetensors", info, ema=ema)
    finally:
        monitor.close()
    records = read_metrics(run_dir) if info.is_main else []
    summary = summary_table(records) if info.is_main else ""
    if info.is_main:
        print(summary)
        print(f"model: {model_path}")
    return TrainResult(run_dir, model_path, step, tokens, records, summary)
