"""Training checkpoints: atomic, pickle-free, exactly resumable, pruned to the last K; one format for every task.

A checkpoint is a folder `checkpoints/step-00001000/` holding
- `model.safetensors`: the weights, as the task writes them (a FourM: the release layout, so it loads
  with `FourM.from_pretrained`; other models: their state dict),
- `optimizer.safetensors`: AdamW moments by parameter name, hyper-parameters as JSON metadata,
- `ema.safetensors` (when an EMA is kept), `rng-rank{r}.safetensors`: each rank's torch RNG,
- `state.json`: step, tokens seen, data position, loss scaler, the recipe.
With `sharded=True` (FSDP runs, `train.checkpoint_format`), `model.safetensors` and `optimizer.safetensors` give
way to every rank's own shards (`shards/`, `optimizer.json`: `open4m.train.sharded`), readable at any world size.
It is written under a temporary name, fsynced and renamed into place (`open4m.atomic.commit_dir`), so a
run killed at any moment (or a power cut) leaves either the complete folder or none; an old checkpoint is
renamed away before it is deleted. Leftovers are swept by the next save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

from ..atomic import commit_dir
from ..errors import CheckpointError
from ..weights import read_safetensors, unshared
from .distributed import DistInfo, barrier, is_sharded, unwrap
from .ema import EMA
from .sharded import is_sharded_checkpoint, load_sharded, save_sharded

_STEP_DIR = re.compile(r"^step-(\d{8})$")
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / "state.json").is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run (None for a new run). A newer step folder without its state.json
    (we never write one: checkpoints appear complete or not at all) is damaged: an error naming it, rather
    than a silent start from an older step."""
    root = Path(run_dir) / "checkpoints"
    if root.exists() and not root.is_dir():
        raise CheckpointError(f"{root} is a file, not the run's checkpoint folder; move it away or choose another "
                              "train.out_dir")
    found = checkpoints(run_dir)
    broken = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name) and p not in found) if root.is_dir() else []
    if broken and (not found or broken[-1].name > found[-1].name):
        raise CheckpointError(f"{broken[-1]} has no state.json: the checkpoint is damaged; {_fix(broken[-1])}")
    return found[-1] if found else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's `state.json`, checked to be a JSON object with its step number."""
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"{checkpoint}/state.json is corrupt ({err}); {_fix(checkpoint)}") from None
    if not isinstance(state, dict) or isinstance(state.get("step"), bool) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{checkpoint}/state.json holds no step number (a JSON object with \"step\"); "
                              f"{_fix(checkpoint)}")
    return state


def train_seconds(state: Mapping[str, Any]) -> float | None:
    """Seconds a checkpoint's run spent in its training loop, over every resume before it; None for a checkpoint
    written before the engine kept the count (its run's time is unknown, not zero)."""
    value = state.get("train_seconds")
    return None if value is None else float(value)


def run_train_seconds(run_dir: str | Path) -> float | None:
    """`train_seconds` of a run's newest checkpoint (None when it has none, or it predates the count)."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    return train_seconds(read_state(latest))


def _fix(checkpoint: Path) -> str:
    return (f"delete {checkpoint} to resume from the checkpoint before it, or set train.resume=false (or another "
            "train.out_dir) to start over")


def _read_file(checkpoint: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of one file of a checkpoint; a missing or damaged one is a `CheckpointError` saying
    how to go on (from the checkpoint before, or afresh)."""
    path = checkpoint / name
    if not path.is_file():
        raise CheckpointError(f"{path} is missing ({'a folder' if path.is_dir() else 'no such file'}): the checkpoint "
                              f"is incomplete; {_fix(checkpoint)}")
    try:
        return read_safetensors(path)
    except CheckpointError as err:
        raise CheckpointError(f"{path} is damaged ({str(err.args[0]).split('(', 1)[-1].split(')', 1)[0]}); "
                              f"{_fix(checkpoint)}") from None


# ------------------------------------------------------------------------------------------
# Model weights
# ------------------------------------------------------------------------------------------
WeightsToFile = Callable[[Mapping[str, torch.Tensor]], tuple[dict[str, torch.Tensor], dict[str, str]]]
WeightsFromFile = Callable[[nn.Module, Mapping[str, torch.Tensor]], None]


def full_state(model: nn.Module, info: DistInfo) -> dict[str, torch.Tensor] | None:
    """On rank 0, the model's full state dict (gathered from FSDP shards when sharded); None elsewhere."""
    inner = unwrap(model)
    if not is_sharded(inner):
        return inner.state_dict() if info.is_main else None
    full = get_model_state_dict(inner, options=_FULL)  # a collective: every rank calls it
    return full if info.is_main else None


def _load_model(model: nn.Module, path: Path, load_weights: WeightsFromFile) -> None:
    state, _ = _read_file(path.parent, path.name)
    inner = unwrap(model)
    if not is_sharded(inner):
        try:
            load_weights(inner, state)
        except (CheckpointError, RuntimeError) as err:  # torch's load_state_dict says a mismatch as RuntimeError
            raise CheckpointError(_another_model(path.parent, inner, state, err)) from None
        return
    own = inner.state_dict()
    set_model_state_dict(inner, {k: state[k] for k in own}, options=StateDictOptions(full_state_dict=True))


def _another_model(checkpoint: Path, model: nn.Module, state: Mapping[str, torch.Tensor], err: Exception) -> str:
    """The message for weights that do not fit the model the recipe builds: the run folder was made by another
    recipe (other sizes, modalities, LoRA), which no older checkpoint of it mends, so the fix is the recipe or the
    folder (the loader's own advice, load with strict=False, is for Python callers and does not apply here)."""
    if isinstance(err, CheckpointError):  # load_state_dict_into has named the mismatch already
        detail = str(err).split(". Was it saved", 1)[0].removeprefix("checkpoint does not match the model: ")
    else:  # torch's load_state_dict lists every key on its own line: say it in a few words instead
        own = model.state_dict()
        shapes = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        parts = shapes[:3] + ([f"{len(shapes)} shape mismatches in all"] if len(shapes) > 3 else [])
        if missing:
            parts.append(f"{len(missing)} weights missing, e.g. {missing[:2]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights, e.g. {unexpected[:2]}")
        detail = "; ".join(parts)
    return (f"{checkpoint} holds the weights of another model than this recipe builds ({detail}): the run folder "
            "was made with another recipe (its config.yaml); resume with that recipe, or choose another "
            "train.out_dir (or set train.resume=false) to start a new run")


def _default_to_file(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return unshared(state), {}


def _default_from_file(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    model.load_state_dict(state, strict=True)


# ------------------------------------------------------------------------------------------
# Optimizer state
# ------------------------------------------------------------------------------------------
def _optimizer_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    sd = get_optimizer_state_dict(unwrap(model), optimizer, options=_FULL)  # empty on ranks > 0
    tensors, scalars = {}, {}
    if not sd:
        return tensors, {}
    for name, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{name}/{key}"] = value
    return tensors, {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}


def _load_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    tensors, meta = _read_file(path.parent, path.name)
    try:
        scalars, groups = json.loads(meta["scalars"]), json.loads(meta["param_groups"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} lacks the optimizer settings ({type(err).__name__}: {err}); "
                              f"{_fix(path.parent)}") from None
    state: dict[str, dict[str, Any]] = {}
    for key, value in (*tensors.items(), *scalars.items()):
        name, _, entry = key.rpartition("/")
        state.setdefault(name, {})[entry] = value
    sd = {"state": state, "param_groups": groups}
    set_optimizer_state_dict(unwrap(model), optimizer, sd, options=StateDictOptions(full_state_dict=True))


# ------------------------------------------------------------------------------------------
# RNG
# ------------------------------------------------------------------------------------------
def _rng_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _restore_rng(path: Path, device: torch.device) -> None:
    if not path.is_file():
        warnings.warn(f"{path.name} is missing (the run had fewer ranks); this rank's dropout RNG starts fresh",
                      stacklevel=3)
        return
    rng, _ = _read_file(path.parent, path.name)
    if "torch" not in rng:
        raise CheckpointError(f"{path} holds no torch RNG state; {_fix(path.parent)}")
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


# ------------------------------------------------------------------------------------------
# Save / load
# ------------------------------------------------------------------------------------------
def save_checkpoint(run_dir: str | Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    ema: EMA | None, state: dict[str, Any], info: DistInfo, keep_last: int,
                    weights_to_file: WeightsToFile = _default_to_file, sharded: bool = False) -> Path:
    """Write checkpoint `step` atomically (every rank calls this), then keep the newest `keep_last`. `sharded`:
    each rank writes its own shards of weights and optimizer state (`open4m.train.sharded`) instead of rank 0
    writing the gathered `model.safetensors` and `optimizer.safetensors`."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if final.exists():
        return final
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    barrier(info)
    save_file(_rng_tensors(info.device), str(tmp / f"rng-rank{info.rank}.safetensors"))
    if sharded:
        save_sharded(tmp, model=model, optimizer=optimizer, info=info)
    else:
        opt_tensors, opt_meta = _optimizer_tensors(model, optimizer)
        weights = full_state(model, info)
        if weights is not None:
            tensors, metadata = weights_to_file(weights)
            save_file(tensors, str(tmp / "model.safetensors"), metadata=metadata or None)
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata=opt_meta)
    if info.is_main:
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"),
                      metadata={"decay": str(ema.decay)})
        (tmp / "state.json").write_text(json.dumps({**state, "step": step, "world": info.world}, indent=1))
    barrier(info)
    if info.is_main:
        commit_dir(tmp, final)  # every file fsynced, then one rename: the folder is complete or absent
        for old in checkpoints(run_dir)[:-keep_last]:
            _discard(old)
    barrier(info)
    return final


def discard_checkpoints(run_dir: str | Path) -> None:
    """Delete a run's checkpoints (a fresh start asked for with overwrite): renamed away first, so a kill
    mid-delete leaves no checkpoint that looks complete."""
    for old in checkpoints(run_dir):
        _discard(old)


def _discard(checkpoint: Path) -> None:
    doomed = checkpoint.with_name(f".tmp-old-{checkpoint.name}")  # renamed first: a kill mid-delete leaves no half one
    os.replace(checkpoint, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def load_checkpoint(path: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None,
                    info: DistInfo, load_weights: WeightsFromFile = _default_from_file) -> dict[str, Any]:
    """Restore weights, optimizer, EMA and this rank's RNG; return the saved state (step, tokens, ...)."""
    path = Path(path)
    state = read_state(path)
    if is_sharded_checkpoint(path):
        load_sharded(path, model=model, optimizer=optimizer, info=info)
    else:
        _load_model(model, path / "model.safetensors", load_weights)
        _load_optimizer(model, optimizer, path / "optimizer.safetensors")
    if ema is not None:
        if not (path / "ema.safetensors").is_file():
            raise CheckpointError(f"{path} has no EMA but train.ema_decay is set; resume without EMA or start a new run")
        ema_state, _ = _read_file(path, "ema.safetensors")
        try:
            ema.load_state_dict(ema_state)
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"{path}/ema.safetensors does not match the model ({err}); {_fix(path)}") from None
    _restore_rng(path / f"rng-rank{info.rank}.safetensors", info.device)
    return state


def export_model(model: nn.Module, path: str | Path, info: DistInfo, ema: EMA | None = None) -> Path | None:
    """Write a FourM's release layout (rank 0); with `ema`, the averaged weights instead."""
    from ..model import FourM

    state = full_state(model, info)
    if state is None:
        return None
    cpu = FourM(unwrap(model).config)
    cpu.load_state_dict(state)
    if ema is not None:
        ema.copy_to(cpu)
    return cpu.save_file(path, overwrite=True)
