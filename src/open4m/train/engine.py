"""The one training engine: FourM pre-training, tokenizer training and fine-tuning all run here.

A :class:`Task` supplies what differs — its model, its batches, its loss, its validation and its
export. The engine owns everything else, once: devices and torchrun (DDP / FSDP2), gradient
accumulation, autocast (with loss scaling for fp16), clipping, the learning-rate schedule (warmup
+ cosine, in steps or tokens, scaled per parameter group), AdamW, the weight EMA, checkpoints
with exact resume, and the monitor (logging, ``metrics.jsonl``, TensorBoard, W&B, progress bar).

Exact resume: everything a step depends on — weights, optimizer moments, EMA, loss scaler, the
step and token counters, each rank's RNG — is in the checkpoint, and a task's batches are a pure
function of the micro-batch index, so a run killed at any moment continues bit for bit.

Nothing is written before the task is built and the recipe checked: a bad recipe leaves no run
folder behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from ..config import option, save
from ..errors import ConfigError
from ..model.compiled import compile_model
from ..weights import unshared
from . import checkpointing, distributed
from .ema import EMA
from .monitor import Monitor, check_backends, read_metrics
from .adamw import StepInBackward
from .memory import release_free_memory
from .optim import build_adamw
from .schedule import lr_at, peak_lr
from .sharded import FORMATS, use_sharded

logger = logging.getLogger(__name__)

__all__ = ["OptimSection", "RunSection", "LogSection", "Task", "StepOutput", "TrainResult", "TrainingDiverged", "run",
           "autocast"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingDiverged(ConfigError, FloatingPointError):
    """The loss became non-finite: the recipe's learning rate or precision is to blame, so the user fixes it
    (still a FloatingPointError for code that catches that)."""


# ------------------------------------------------------------------------------------------
# The sections every recipe shares
# ------------------------------------------------------------------------------------------
@dataclass
class OptimSection:
    blr: float = option(1e-4, "Base learning rate per 256 samples: lr = blr x global_batch / 256 (unless `lr`).")
    lr: float | None = option(None, "Absolute peak learning rate; overrides `blr` scaling.")
    min_lr: float = option(1e-6, "Learning rate at the end of the cosine decay.")
    warmup: float = option(0, "Linear warmup length, in the unit of the run (steps, or tokens if train.tokens is set).")
    weight_decay: float = option(0.05, "Decoupled weight decay (never on norms, biases, embeddings).")
    betas: list = option([0.9, 0.95], "AdamW betas.")
    eps: float = option(1e-8, "AdamW epsilon.")
    clip_grad: float | None = option(3.0, "Clip the global gradient norm to this (null: no clipping).")
    fused: bool | None = option(None, "Fused AdamW kernel; null picks it where the device supports it.")
    state_dtype: str = option("fp32", "AdamW moments' storage: fp32, or bf16 to halve the optimizer's memory (the "
                                      "update is still computed in fp32; needs betas[1] <= 0.99).")
    step_in_backward: bool = option(False, "Apply each parameter's update as soon as its gradient is complete and free "
                                           "it, so the gradients never all exist at once (needs clip_grad: null, one "
                                           "process, no fp16).")

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ConfigError(f"optim.betas needs two values, e.g. [0.9, 0.95], got {self.betas}")
        if self.step_in_backward and self.clip_grad is not None:
            raise ConfigError("optim.step_in_backward updates each parameter before the others have gradients, so "
                              "the global norm cannot be clipped; set optim.clip_grad: null (or step_in_backward: false)")
        if self.lr is None and self.blr <= 0 or self.lr is not None and self.lr <= 0:
            raise ConfigError("optim.blr / optim.lr must be positive")


@dataclass
class RunSection:
    steps: int = option(100, "Optimizer steps (the schedule's length unless `tokens` is set).")
    tokens: int | None = option(None, "Token budget (tokens seen per step x steps); when set, it ends the run and the "
                                      "schedule is measured in tokens.")
    out_dir: str = option("runs/run", "Run folder: checkpoints, logs, the exported model (in a recipe file: relative "
                                      "to the file).", path=True)
    resume: bool = option(True, "Continue from the newest checkpoint in out_dir when there is one.")
    seed: int = option(0, "Seed of the model init, data order, masking, augmentation and dropout.")
    device: str = option("auto", "`auto` (cuda when available), cpu, cuda, cuda:1, ...")
    precision: str = option("fp32", "fp32, bf16 or fp16 autocast (fp16 adds loss scaling).")
    threads: int | None = option(None, "torch CPU threads (null: torch's default).")
    accum_steps: int = option(1, "Gradient accumulation micro-steps per optimizer step.")
    ema_decay: float | None = option(None, "Keep an EMA of the weights with this decay (e.g. 0.9999); exported too.")
    save_every: int = option(500, "Checkpoint every N steps (and at the end).")
    keep_last: int = option(2, "Checkpoints kept; older ones are deleted.")
    eval_every: int = option(500, "Validation every N steps (0: only at the end).")
    distributed: str = option("ddp", "Under torchrun: `ddp` (replicated) or `fsdp` (FSDP2 fully_shard).")
    checkpoint_format: str = option("auto", "`single` (rank 0 writes the gathered model.safetensors), `sharded` (every "
                                   "rank writes its shards; resumable on any number of ranks) or `auto` (sharded "
                                   "under FSDP with more than one rank).")
    compile: bool = option(False, "torch.compile the model, one graph per forward and loss (pays off on GPUs for long runs).")
    release_memory: bool = option(False, "After each forward pass (and halfway through the backward pass with "
                                         "optim.step_in_backward), hand the heap's free pages back to the operating "
                                         "system (glibc malloc_trim; CPU training): a lower peak resident memory for "
                                         "some page faults.")

    def __post_init__(self) -> None:
        checks = [
            (self.precision in ("fp32", "bf16", "fp16"), f"train.precision={self.precision!r}: use fp32, bf16 or fp16"),
            (self.distributed in ("ddp", "fsdp"), f"train.distributed={self.distributed!r}: use ddp or fsdp"),
            (self.checkpoint_format in FORMATS,
             f"train.checkpoint_format={self.checkpoint_format!r}: use {', '.join(FORMATS)}"),
            (self.steps >= 1 and self.accum_steps >= 1, "train.steps and train.accum_steps must be >= 1"),
            (self.keep_last >= 1, "train.keep_last must be >= 1 (the newest checkpoint is what resume needs)"),
            (self.save_every >= 1, "train.save_every must be >= 1"),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "train.ema_decay must be in (0, 1) or null"),
            (self.tokens is None or self.tokens >= 1, "train.tokens must be >= 1 or null"),
            # numpy's seed sequences (data order, masking) take no negative seed and torch none past 64 bits: both
            # failed with a traceback at the first batch
            (0 <= self.seed < 2**63, f"train.seed={self.seed}: give a whole number from 0 to 2**63 - 1, e.g. 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


@dataclass
class LogSection:
    every: int = option(10, "Log scalars every N steps.")
    progress: bool = option(True, "tqdm progress bar (loss, tokens/s, ETA).")
    tensorboard: bool = option(False, "TensorBoard event files in out_dir/tb (needs `pip install open4m[tensorboard]`).")
    wandb: bool = option(False, "Log to Weights & Biases (needs the wandb package); a resumed run continues its W&B run.")
    wandb_project: str = option("open4m", "W&B project name.")
    run_name: str | None = option(None, "Run name for W&B (default: the out_dir name).")

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError("log.every must be >= 1")


# ------------------------------------------------------------------------------------------
# What a task supplies
# ------------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    """One micro-batch's result: the loss to minimise and the scalars to log.

    ``scalars`` maps a name to ``(sum, count)`` tensors kept on the device; the monitor shows
    ``sum / count`` accumulated over micro-batches, steps and ranks, so a modality with no targets
    in a batch (count 0) simply does not pull its average down — and nothing forces a host sync.
    """

    loss: torch.Tensor
    scalars: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class Task:
    """The part of a training run that is not the loop. Subclasses set ``model`` in :meth:`setup`.

    A task must not write anything to disk before :meth:`export` (the engine creates the run
    folder only once the task is built).
    """

    model: nn.Module
    name: str = "task"

    def setup(self, info: distributed.DistInfo) -> str:
        """Build data and model (no files written); return a one-line report."""
        raise NotImplementedError

    def global_batch(self, info: distributed.DistInfo, accum: int) -> int:
        """Samples per optimizer step over every rank (what the `blr` scaling and resume checks use)."""
        raise NotImplementedError

    def tokens_per_step(self, info: distributed.DistInfo, accum: int) -> int:
        """Tokens (or samples) per optimizer step, for token budgets and throughput."""
        return self.global_batch(info, accum)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups; a group's ``lr_scale`` multiplies the scheduled rate (layer-wise decay)."""
        from .optim import parameter_groups

        return parameter_groups(self.model, weight_decay)

    def batches(self, start: int, stop: int, info: distributed.DistInfo, accum: int) -> Iterator[Any]:
        """This rank's micro-batches ``start .. stop-1`` (a pure function of the index: exact resume)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> StepOutput:
        """Forward one micro-batch (under the engine's autocast)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, info: distributed.DistInfo, precision: str) -> dict[str, float]:
        """Validation scalars (empty when the task has no validation data)."""
        return {}

    def on_log(self, step: int, run_dir: Path | None, batch: Any, output: StepOutput) -> dict[str, float]:
        """Extra scalars (and side outputs such as sample images) at a logging step; rank 0 only."""
        return {}

    def resume_state(self, info: distributed.DistInfo, accum: int) -> dict[str, Any]:
        """Values a checkpoint records and a resumed run must match (e.g. the global batch)."""
        return {"global_batch": self.global_batch(info, accum)}

    def wrap(self, model: nn.Module, strategy: str, info: distributed.DistInfo) -> nn.Module:
        return distributed.wrap(model, strategy, info)

    def weights_to_file(self, state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The checkpoint's model weights as safetensors tensors + metadata (default: the state dict)."""
        return unshared(state), {}

    def weights_from_file(self, model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
        """Load a checkpoint's weights into the (unwrapped) model."""
        model.load_state_dict(state, strict=True)

    def export(self, model: nn.Module, ema: EMA | None, run_dir: Path) -> Path:
        """Write the finished model (rank 0); return its path."""
        raise NotImplementedError

    def summary(self, records: list[dict[str, Any]]) -> str:
        """The table printed at the end of the run."""
        from .monitor import summary_table

        return summary_table(records)


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    run_dir: Path
    model_path: Path | None
    steps: int
    tokens: int
    metrics: list[dict[str, Any]]
    summary: str
    final: dict[str, float] = field(default_factory=dict)  # the last validation scalars
    # Seconds in the training loop over every resume of the run (None: resumed from a checkpoint that predates the
    # count, so the total is unknown): what a run's card states as its training time.
    train_seconds: float | None = None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision`` (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


class _Tally:
    """(sum, count) per scalar over micro-batches; one cross-rank reduction when read."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, output: StepOutput) -> None:
        for name, (value, count) in {"loss": (output.loss.detach(), torch.ones((), device=output.loss.device)),
                                     **output.scalars}.items():
            value, count = value.detach().float(), count.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts[name] + count if name in self.counts else count

    def means(self, info: distributed.DistInfo) -> dict[str, float]:
        if not self.sums:
            return {}
        names = list(self.sums)
        stacked = torch.stack([torch.stack([self.sums[n] for n in names]), torch.stack([self.counts[n] for n in names])])
        total = distributed.sum_across_ranks(stacked, info).cpu()
        return {n: float(s / c) for n, s, c in zip(names, total[0], total[1]) if c > 0}


def _scalars(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}/{k}": v for k, v in values.items()}


# ------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------
def run(task: Task, optim: OptimSection, train: RunSection, log: LogSection, config: Any) -> TrainResult:
    """Run (or resume) ``task``; ``config`` is the whole recipe (saved beside the run). Under torchrun
    every rank calls this."""
    info = distributed.init_distributed(train.device)
    try:
        return _Run(task, optim, train, log, config, info).go()
    finally:
        distributed.shutdown(info)


class _Run:
    def __init__(self, task: Task, optim: OptimSection, train: RunSection, log: LogSection, config: Any,
                 info: distributed.DistInfo) -> None:
        self.task, self.o, self.t, self.log, self.config, self.info = task, optim, train, log, config, info

    # -- set-up: everything that can fail, before anything is written ------------------------------
    def _check_schedule(self, total: float) -> None:
        """A bad schedule (a warmup not shorter than the run) fails before any work."""
        try:
            lr_at(0, total, 1.0, self.o.warmup, self.o.min_lr)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def _build(self) -> str:
        t, info, task = self.t, self.info, self.task
        if t.threads:
            torch.set_num_threads(t.threads)
        if t.ema_decay is not None and t.distributed == "fsdp" and info.enabled:
            raise ConfigError("train.ema_decay is not supported with train.distributed=fsdp; use ddp")
        if self.o.step_in_backward and (info.enabled or t.precision == "fp16"):
            raise ConfigError("optim.step_in_backward needs one process and fp32 or bf16: ranks must average their "
                              "gradients and fp16 must check them all for overflow before any update; turn it off "
                              "(or train in one process with train.precision: bf16)")
        check_backends(self.log.tensorboard, self.log.wandb)
        if t.tokens is None:  # a schedule in steps fails before the task builds its data (a world source renders)
            self._check_schedule(t.steps)
        torch.manual_seed(t.seed)
        report = task.setup(info)
        self.global_batch = task.global_batch(info, t.accum_steps)
        self.peak = peak_lr(self.o.blr, self.global_batch, self.o.lr)
        self.tokens_per_step = task.tokens_per_step(info, t.accum_steps)
        self.total = t.tokens if t.tokens is not None else t.steps
        self.total_steps = math.ceil(t.tokens / self.tokens_per_step) if t.tokens is not None else t.steps
        if t.tokens is not None:  # a schedule in steps was checked before the task's set-up
            self._check_schedule(self.total)
        model = task.model
        model.to(info.device).train()
        self.ema = EMA(model, t.ema_decay) if t.ema_decay is not None else None
        # FSDP2 shards in place: keep a weightless copy to load the gathered weights into for the export.
        self.skeleton = distributed.skeleton(model) if t.distributed == "fsdp" and info.enabled else None
        self.wrapped = task.wrap(model, t.distributed, info)  # before the optimizer: FSDP2 swaps in sharded parameters
        self.optimizer = build_adamw(task.param_groups(self.o.weight_decay), self.peak, tuple(self.o.betas), self.o.eps,
                                     self.o.fused, self.o.state_dtype)
        self.stepper = StepInBackward(self.optimizer, t.release_memory) if self.o.step_in_backward else None
        if t.compile:
            self.wrapped = compile_model(self.wrapped)
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=t.precision == "fp16")
        self.params = [p for p in model.parameters() if p.requires_grad]
        return report

    def _resume(self) -> tuple[int, int, float | None, str]:
        run_dir, t = Path(self.t.out_dir), self.t
        latest = checkpointing.latest_checkpoint(run_dir) if t.resume else None
        if latest is None:
            return 0, 0, 0.0, ""
        state = checkpointing.load_checkpoint(latest, model=self.wrapped, optimizer=self.optimizer, ema=self.ema,
                                              info=self.info, load_weights=self.task.weights_from_file)
        for key, value in self.task.resume_state(self.info, t.accum_steps).items():
            if key in state and state[key] != value:
                raise ConfigError(f"{latest} was trained with {key}={state[key]}, now {value}; keep it equal to resume, "
                                  "or set train.resume=false (or another train.out_dir)")
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        tokens = state.get("tokens", state["step"] * self.tokens_per_step)
        return state["step"], tokens, checkpointing.train_seconds(state), f"; resumed from {latest.name}"

    def go(self) -> TrainResult:
        task, t, info = self.task, self.t, self.info
        report = self._build()
        step, tokens, seconds_before, resumed = self._resume()
        started, first_step = time.perf_counter(), step

        def seconds_so_far() -> float | None:
            """The run's seconds so far: the loop's since this start (none when it trains no step: a rerun of a
            finished run adds nothing) on top of the checkpoint's count."""
            if seconds_before is None:
                return None
            return seconds_before + (time.perf_counter() - started if step > first_step else 0.0)

        run_dir = Path(t.out_dir)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save(self.config, run_dir / "config.yaml")
        batches = task.batches(step * t.accum_steps, self.total_steps * t.accum_steps, info, t.accum_steps)
        monitor = Monitor(run_dir, total_steps=self.total_steps, start_step=step, enabled=info.is_main,
                          progress=self.log.progress, tensorboard=self.log.tensorboard, wandb=self.log.wandb,
                          wandb_project=self.log.wandb_project, run_name=self.log.run_name, config=_plain(self.config))
        if info.is_main:
            logger.info("%s%s; %d rank(s), global batch %d, peak lr %.3g, %d steps, %s tokens/step -> %s", report,
                        resumed, info.world, self.global_batch, self.peak, self.total_steps,
                        f"{self.tokens_per_step:,}", run_dir)
        final: dict[str, float] = {}

        def validate() -> None:
            nonlocal final
            values = task.evaluate(self.wrapped, info, t.precision)
            if values:
                final = values
                monitor.log(step, tokens, _scalars("val", values))

        def save_checkpoint(seconds: float | None) -> None:
            checkpointing.save_checkpoint(
                run_dir, step, model=self.wrapped, optimizer=self.optimizer, ema=self.ema, info=info,
                keep_last=t.keep_last, weights_to_file=task.weights_to_file,
                sharded=use_sharded(t.checkpoint_format, t.distributed, info),
                state={"tokens": tokens, "samples_seen": step * self.global_batch, "scaler": self.scaler.state_dict(),
                       "train_seconds": seconds, **task.resume_state(info, t.accum_steps)})

        try:
            tally = _Tally()
            while step < self.total_steps:
                progress = tokens if t.tokens is not None else step
                lr = lr_at(progress, self.total, self.peak, self.o.warmup, self.o.min_lr)
                logging_step = (step + 1) % self.log.every == 0 or step + 1 in (1, self.total_steps)
                batch, output, grad_norm = self._step(batches, lr, tally, logging_step)
                step += 1
                tokens += self.tokens_per_step
                if logging_step or step % t.save_every == 0:
                    means = tally.means(info)
                    tally = _Tally()
                    if not all(math.isfinite(v) for v in means.values()):
                        raise TrainingDiverged(f"step {step}: non-finite loss {means}; lower optim.blr / optim.lr or "
                                               "use bf16/fp32")
                    extra = task.on_log(step, run_dir, batch, output) if info.is_main and logging_step else {}
                    monitor.log(step, tokens, {**_scalars("train", means), **_scalars("train", extra), "train/lr": lr,
                                               "train/grad_norm": float(grad_norm)})
                monitor.advance()
                if t.eval_every and step % t.eval_every == 0 and step < self.total_steps:
                    validate()
                if step % t.save_every == 0 and step < self.total_steps:
                    save_checkpoint(seconds_so_far())
            seconds = seconds_so_far()  # the clock stops with the last step: the final checkpoint and result agree
            validate()
            save_checkpoint(seconds)
            distributed.check_in_sync(self.wrapped, info)
            plain = self._plain_model()
            model_path = task.export(plain, self.ema, run_dir) if info.is_main else None
        finally:
            monitor.close()
        records = read_metrics(run_dir) if info.is_main else []
        summary = task.summary(records) if info.is_main else ""
        if info.is_main:  # the table is TrainResult.summary (the CLI prints it); the log says where the result is
            logger.debug("%s", summary)
            logger.info("finished at step %d (%s tokens): %s", step, f"{tokens:,}", model_path)
        return TrainResult(run_dir, model_path, step, tokens, records, summary, final, seconds)

    def _plain_model(self) -> nn.Module | None:
        """The trained model as an ordinary module for the task's export (gathered from FSDP shards on
        rank 0: a collective, every rank calls it); None on the other ranks of a sharded run."""
        inner = distributed.unwrap(self.wrapped)
        if self.skeleton is None or not distributed.is_sharded(inner):
            return inner
        state = checkpointing.full_state(self.wrapped, self.info)
        if state is None:
            return None
        # `assign` swaps the meta tensors for the gathered ones; buffers outside the state dict were copied for real.
        self.skeleton.load_state_dict(state, strict=True, assign=True)
        return self.skeleton.to("cpu")

    def _step(self, batches: Iterator[Any], lr: float, tally: _Tally,
              logged: bool) -> tuple[Any, StepOutput, torch.Tensor]:
        """One optimizer step over ``accum_steps`` micro-batches; returns the last batch, its output and the
        gradient norm (a tensor: read only when logged, so steps need no host sync; updates inside the
        backward pass only sum it for a ``logged`` step)."""
        t, model = self.t, self.wrapped
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = output = None
        for micro in range(t.accum_steps):
            last = micro == t.accum_steps - 1
            sync = last or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                batch = next(batches)
                with autocast(self.info.device, t.precision):
                    output = self.task.loss(model, batch, self.info.device)
                if t.release_memory:
                    release_free_memory()  # the forward's temporaries left holes the backward pass would keep
                if last and self.stepper is not None:  # this backward pass completes the gradients: update inside it
                    self.stepper.arm(track_norm=logged)
                self.scaler.scale(output.loss / t.accum_steps).backward()
            tally.add(output)
        if self.stepper is not None:
            norm = self.stepper.finish()
        else:
            self.scaler.unscale_(self.optimizer)
            clip = self.o.clip_grad
            norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip is not None else math.inf)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(distributed.unwrap(model))
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        return batch, output, norm.detach()


def _plain(config: Any) -> dict[str, Any]:
    from ..config import to_dict

    return to_dict(config)
