"""Sharded training checkpoints: every rank writes its own slice, any number of ranks reads them back.

Gathering the full weights and AdamW moments onto rank 0 (the single-file format of `checkpointing`) costs
rank 0 three times the model in memory and serialises the write through one process: fine for small models,
the wall a large FSDP run hits first. Here each rank writes only the shards it holds, through
`torch.distributed.checkpoint` with its safetensors storage (`HuggingFaceStorageWriter`, one
`shards/shard-0000R-model-00001-of-00001.safetensors` per rank; each tensor's offset in the full tensor is in
the file's metadata). `HuggingFaceStorageReader` rebuilds the global layout from those offsets, so a checkpoint
saved by N ranks resumes on M ranks (FSDP, DDP or one process) — resharding is DCP's load plan.

Nothing is pickled: the DCP safetensors writer stores tensors only (a non-tensor value would be written as raw
bytes into the safetensors stream and corrupt it), so the parts that are not tensors — the optimizer's
parameter groups and any non-tensor per-parameter entry — go to `optimizer.json`, written by rank 0. Tied
weights keep every name, the later ones written from a copy (safetensors refuses two names on one storage), as
in the single-file format; which names are tied must not depend on the rank (an empty shard shares nothing), so
nothing is dropped.

Layout inside `checkpoints/step-XXXXXXXX/` (the rest — `state.json`, `rng-rank{r}.safetensors`,
`ema.safetensors` — is `checkpointing`'s, shared by both formats):
- `shards/*.safetensors`: `model/<name>` weights and `optimizer/<name>/<entry>` AdamW moments and step counts,
- `optimizer.json`: parameter groups and non-tensor entries.

A shared filesystem is assumed across nodes (every rank writes into the same folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import CheckpointException, HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

from ..errors import CheckpointError
from ..weights import unshared
from .distributed import DistInfo, unwrap

logger = logging.getLogger(__name__)

__all__ = ["SHARDS", "FORMATS", "is_sharded_checkpoint", "save_sharded", "load_sharded", "read_full_weights",
           "use_sharded"]

SHARDS = "shards"
META = "optimizer.json"
FORMATS = ("auto", "single", "sharded")
_MODEL, _OPTIM = "model/", "optimizer/"


def use_sharded(fmt: str, strategy: str, info: DistInfo) -> bool:
    """`train.checkpoint_format`: `auto` shards exactly when the weights are sharded (FSDP on more than one
    rank), where gathering them to rank 0 is what a sharded checkpoint avoids; one process or DDP holds the
    full weights anyway, and the single file is what `FourM.from_pretrained` reads."""
    return fmt == "sharded" or (fmt == "auto" and strategy == "fsdp" and info.enabled)


def is_sharded_checkpoint(checkpoint: str | Path) -> bool:
    return (Path(checkpoint) / SHARDS).is_dir()


def _templates(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any], dict]:
    """This rank's view of the model and optimizer state (DTensor shards under FSDP, full tensors otherwise):
    the flat tensor dict DCP writes or fills in place, the non-tensor entries, and the optimizer state dict
    (whose tensors are the same objects as the flat dict's)."""
    inner = unwrap(model)
    model_sd = get_model_state_dict(inner)
    optim_sd = get_optimizer_state_dict(inner, optimizer)  # initialises empty AdamW state, so a load has targets
    tensors = {_MODEL + k: v for k, v in model_sd.items()}
    scalars: dict[str, Any] = {}
    for name, entries in optim_sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM}{name}/{key}"] = value
            else:
                scalars[f"{name}/{key}"] = value
    return tensors, scalars, {"model": model_sd, "optim": optim_sd}


def save_sharded(folder: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo) -> None:
    """Write this rank's shards of the weights and optimizer state into `folder` (every rank calls this;
    `folder` is the checkpoint's temporary folder, made by rank 0 beforehand)."""
    folder = Path(folder)
    tensors, scalars, sd = _templates(model, optimizer)
    writer = HuggingFaceStorageWriter(str(folder / SHARDS), save_distributed=True)
    with _quiet():
        dcp.save(unshared(tensors), storage_writer=writer, no_dist=not info.enabled)
    if info.is_main:
        meta = {"param_groups": sd["optim"]["param_groups"], "scalars": scalars, "world": info.world}
        (folder / META).write_text(json.dumps(meta, indent=1))


def load_sharded(checkpoint: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo) -> None:
    """Fill the (possibly FSDP-sharded) model and optimizer from a sharded checkpoint written by any number
    of ranks; every rank calls this."""
    checkpoint = Path(checkpoint)
    try:
        meta = json.loads((checkpoint / META).read_text(encoding="utf-8"))
        groups, scalars = meta["param_groups"], meta["scalars"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{checkpoint / META} is missing or damaged ({type(err).__name__}: {err}); "
                              f"{_fix(checkpoint)}") from None
    tensors, _, sd = _templates(model, optimizer)
    reader = HuggingFaceStorageReader(str(checkpoint / SHARDS))
    try:
        with _quiet():
            dcp.load(tensors, storage_reader=reader, no_dist=not info.enabled)
    except CheckpointException as err:  # DCP's wrapper of each rank's failure: a missing key, a size mismatch
        raise CheckpointError(f"{checkpoint / SHARDS} does not hold this model's state ({_cause(err)}); "
                              f"resume with the recipe that wrote it, or {_fix(checkpoint)}") from None
    inner = unwrap(model)
    set_model_state_dict(inner, sd["model"])
    state = sd["optim"]["state"]
    for key, value in scalars.items():
        name, _, entry = key.rpartition("/")
        state.setdefault(name, {})[entry] = value
    # JSON has no tuples: give values back the type the optimizer uses (AdamW's betas)
    current = sd["optim"]["param_groups"]
    groups = [{k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in group.items()}
              for group, now in zip(groups, current)] + groups[len(current):]
    set_optimizer_state_dict(inner, optimizer, {"state": state, "param_groups": groups})
    logger.debug("loaded %s (written by %s rank(s)) on %d rank(s)", checkpoint, meta.get("world", "?"), info.world)


def read_full_weights(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state dict of a sharded checkpoint, read in this one process without
    torchrun: for inspecting a mid-run checkpoint or loading it into a plain model (tied names included)."""
    checkpoint = Path(checkpoint)
    if not is_sharded_checkpoint(checkpoint):
        raise CheckpointError(f"{checkpoint} has no {SHARDS}/ folder: it is not a sharded checkpoint (a single-file "
                              "one holds model.safetensors)")
    reader = HuggingFaceStorageReader(str(checkpoint / SHARDS))
    metadata = reader.read_metadata()
    full = {k: torch.empty(m.size, dtype=m.properties.dtype) for k, m in metadata.state_dict_metadata.items()
            if k.startswith(_MODEL)}
    with _quiet():
        dcp.load(full, storage_reader=reader, no_dist=True)
    return {k[len(_MODEL):]: v for k, v in full.items()}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DCP warns that it assumes one process even when told so (`no_dist`); one process is a supported case here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _cause(err: CheckpointException) -> str:
    """The first rank's underlying error, on one line."""
    cause = next(iter(err.failures.values()))[0] if err.failures else err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def _fix(checkpoint: Path) -> str:
    return (f"delete {checkpoint} to resume from the checkpoint before it, or set train.resume=false (or another "
            "train.out_dir) to start over")
