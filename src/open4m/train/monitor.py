"""Where training numbers go: metrics.jsonl, TensorBoard, W&B, the progress bar, a final table.

Only rank 0 reports. `metrics.jsonl` is the durable record (one JSON object per logged step);
after a resume the entries past the restored step are dropped, so the file always describes one
consistent run. TensorBoard goes through `torch.utils.tensorboard` (or `tensorboardX`), the
optional extra `open4m[tensorboard]`, with `purge_step` on resume so curves never repeat steps;
W&B resumes the run it started (its id is kept in the run folder).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

from ..atomic import write_text_atomic
from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
WANDB_ID = "wandb_run_id"


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``. A run killed mid-write (SIGKILL, power cut) can leave the last line
    torn: it is dropped (the resumed run logs that step again); a torn line elsewhere is a corrupt file."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                logger.warning("%s: dropped a torn last line (the run was killed while writing it)", path)
                break
            raise DataError(f"{path} line {i + 1} is not JSON ({err}); delete the file to start its log "
                            "afresh") from None
    return records


def _writer_class() -> Any:
    """TensorBoard's SummaryWriter from torch.utils.tensorboard (needs `tensorboard`) or tensorboardX."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError("log.tensorboard is on but neither tensorboard nor tensorboardX is installed: "
                              "pip install 'open4m[tensorboard]' (or set log.tensorboard=false)") from None
    return SummaryWriter


def _wandb_module() -> Any:
    try:
        import wandb
    except ImportError:
        raise ConfigError("log.wandb is on but the wandb package is not installed: pip install wandb "
                          "(or set log.wandb=false)") from None
    return wandb


def check_backends(tensorboard: bool, wandb: bool) -> None:
    """Fail before a run starts (and writes anything) when a requested logging backend is not installed."""
    if tensorboard:
        _writer_class()
    if wandb:
        _wandb_module()


def _wandb_run(run_dir: Path, project: str, name: str | None, config: Mapping[str, Any]) -> Any:
    """Start or resume this run folder's W&B run (its id is kept in the folder)."""
    wandb = _wandb_module()
    id_file = run_dir / WANDB_ID
    run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
    write_text_atomic(id_file, run_id)
    return wandb.init(project=project, name=name or run_dir.name, id=run_id, resume="allow", config=dict(config),
                      dir=str(run_dir))


class Monitor:
    def __init__(self, run_dir: Path, *, total_steps: int, start_step: int, enabled: bool, progress: bool,
                 tensorboard: bool, wandb: bool, wandb_project: str, run_name: str | None, config: Mapping[str, Any]) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self.bar = self.tb = self.wandb = None
        self._tokens_at, self._time_at = None, None
        if not enabled:
            return
        kept = [m for m in read_metrics(run_dir) if m["step"] <= start_step]
        write_text_atomic(run_dir / METRICS, "".join(json.dumps(m) + "\n" for m in kept))
        self._start_step, self._kept = start_step, kept
        self._file = open(run_dir / METRICS, "a", encoding="utf-8")  # append-only: a kill tears at most the last line
        if tensorboard:
            self.tb = _writer_class()(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        if wandb:
            self.wandb = _wandb_run(run_dir, wandb_project, run_name, config)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def log(self, step: int, tokens: int, scalars: Mapping[str, float]) -> None:
        """Record scalars of `step`; train/loss and throughput also go to the progress bar."""
        if not self.enabled:
            return
        if step <= self._start_step and any(m["step"] == step and scalars.keys() <= m.keys() for m in self._kept):
            return  # a rerun of a finished run validates its last step again: that record is in the log already
        now = time.perf_counter()
        rate = None
        if self._time_at is not None and now > self._time_at:
            rate = (tokens - self._tokens_at) / (now - self._time_at)
        self._tokens_at, self._time_at = tokens, now
        record = {"step": step, "tokens": tokens, **{k: float(v) for k, v in scalars.items()}}
        if rate is not None and "train/loss" in scalars:
            record["train/tokens_per_s"] = rate
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if k != "step":
                    self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step"}, step=step)
        if self.bar is not None and "train/loss" in record:
            post = {"loss": f"{record['train/loss']:.3f}"}
            if rate is not None:
                post["tok/s"] = f"{rate:,.0f}"
            self.bar.set_postfix(post, refresh=False)
        elif self.bar is None and "train/loss" in record:
            logger.info("step %d: loss %.4f", step, record["train/loss"])

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        self._file.close()


def summary_table(records: list[dict[str, Any]]) -> str:
    """Per modality: first and last training loss, last validation loss."""
    train = [r for r in records if "train/loss" in r]
    val = [r for r in records if "val/loss" in r]
    if not train:
        return "no training steps were logged"
    names = sorted({k.split("/", 2)[2] for r in records for k in r if k.startswith(("train/loss/", "val/loss/"))})
    rows = [("modality", "train first", "train last", "val last")]
    for name in ["all", *names]:
        key = "loss" if name == "all" else f"loss/{name}"
        first = train[0].get(f"train/{key}")
        last = train[-1].get(f"train/{key}")
        v = val[-1].get(f"val/{key}") if val else None
        rows.append((name, *(f"{x:.4f}" if x is not None else "-" for x in (first, last, v))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    speeds = [r["train/tokens_per_s"] for r in train if "train/tokens_per_s" in r]
    tail = f"\nsteps {train[-1]['step']}, tokens {train[-1]['tokens']:,}"
    if speeds:
        tail += f", median {sorted(speeds)[len(speeds) // 2]:,.0f} tokens/s"
    return "\n".join(lines) + tail
