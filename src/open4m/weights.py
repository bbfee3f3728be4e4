"""Checkpoint files on disk: safetensors tensors with their metadata, and a Hub-layout folder.

Shared by FourM and tokenizer checkpoints, below both, so neither imports the other to read a file.
Safetensors only (nothing is ever unpickled); a corrupt or truncated file is a one-line error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open

from .errors import CheckpointError, NotFound

__all__ = ["CheckpointError", "read_safetensors", "weights_and_config", "safetensors_files", "unshared", "WEIGHTS_NAME", "CONFIG_NAME"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, with a readable error for corrupt files."""
    return _read(path, tensors=True)


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file without its tensors (a config lookup), with the same errors."""
    return _read(path, tensors=False)[1]


def _read(path: str | os.PathLike, *, tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if path.is_dir():
        raise NotFound(f"{path} is a folder, not a safetensors file; restore the file (download or save it again)")
    if not path.is_file():
        raise NotFound(f"no checkpoint file at {path}; check the path")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); it may be truncated or corrupt — "
            "download or save it again"
        ) from None
    return state, metadata


def safetensors_files(folder: Path) -> list[Path]:
    """The entries of `folder` named like safetensors files, by name; the suffix in any case (`Model.SAFETENSORS`
    too, as tools on case-insensitive file systems write it). A folder so named is kept: reading it then says what
    is wrong with it."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".safetensors")


def weights_and_config(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """A weights file -> (it, None); a Hub-layout directory -> (its one .safetensors file, its config.json)."""
    if path.is_file():
        return path, None
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        candidates = safetensors_files(path)
        if len(candidates) != 1:
            raise NotFound(
                f"{path} has no {WEIGHTS_NAME}" + (f" (found {[c.name for c in candidates]})" if candidates else "")
                + "; point at the .safetensors file itself"
            )
        weights = candidates[0]
    config_file = path / CONFIG_NAME
    if config_file.exists() and not config_file.is_file():
        raise CheckpointError(f"{config_file} is a folder, not the model's settings; remove it (the weights file "
                              "carries its config) or save the model again")
    return weights, (_read_config_json(config_file) if config_file.is_file() else None)

def _read_config_json(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); download or save the model again") from None
    # The Hub mixin of some huggingface_hub versions nests the constructor argument.
    if isinstance(config, dict) and set(config) == {"config"} and isinstance(config["config"], dict):
        config = config["config"]
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object of settings, got {type(config).__name__}; download or "
                              "save the model again")
    return config


def unshared(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict safetensors can write: detached, contiguous, each shared tensor cloned after its first name
    (tied weights keep every name, as the official files do)."""
    seen: set[int] = set()
    out = {}
    for key in sorted(state):
        t = state[key].detach()
        ptr = (t.to_local() if hasattr(t, "to_local") else t).data_ptr()  # an FSDP DTensor: its shard's storage
        out[key] = t.clone().contiguous() if ptr in seen else t.contiguous()
        seen.add(ptr)
    return out
