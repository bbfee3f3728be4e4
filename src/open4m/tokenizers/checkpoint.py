"""Reading and writing tokenizer checkpoints in both official layouts, never unpickling.

* release layout: one ``.safetensors`` file, the config in its metadata (one literal string per key);
* Hub layout: a directory with ``model.safetensors`` and ``config.json``;
* a Hugging Face Hub id (``owner/name``) is fetched with ``huggingface_hub`` into the Hub layout.

Writes are atomic (temporary file + ``os.replace``) so an interrupted save never leaves a
half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..atomic import atomic_write, write_text_atomic
from ..model.checkpoint import read_safetensors

__all__ = ["resolve_checkpoint", "read_checkpoint", "write_safetensors", "write_json", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A file, a directory, or a Hub id -> a local file or directory holding the checkpoint."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    name = str(name_or_path)
    if _looks_like_hub_id(name):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors"]))
        except Exception as err:  # network errors, missing repos and offline mode all end here
            raise FileNotFoundError(
                f"could not fetch tokenizer {name!r} from the Hugging Face Hub ({type(err).__name__}: {err}); "
                "pass a local .safetensors file or a directory with model.safetensors + config.json instead"
            ) from None
    raise FileNotFoundError(f"no tokenizer checkpoint at {name!r}: give a .safetensors file, a directory or a Hub id")



def read_checkpoint(name_or_path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (state dict, raw config dict). The config comes from config.json when present, else metadata."""
    path = resolve_checkpoint(name_or_path)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.exists():
            found = sorted(p.name for p in path.glob("*.safetensors"))
            if len(found) != 1:
                raise FileNotFoundError(f"{path} holds no {WEIGHTS_NAME} (safetensors files there: {found})")
            weights = path / found[0]
        state, metadata = read_safetensors(weights)
        config_file = path / CONFIG_NAME
        if config_file.exists():
            try:
                config = json.loads(config_file.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{config_file} is not valid JSON ({err})") from None
            config = config.get("config", config) if isinstance(config, dict) else config
            if not isinstance(config, dict):
                raise ValueError(f"{config_file} must hold a JSON object of tokenizer settings")
            return state, config
        return state, _metadata_config(metadata, weights)
    state, metadata = read_safetensors(path)
    return state, _metadata_config(metadata, path)


def _metadata_config(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    metadata = {k: v for k, v in metadata.items() if k != "format"}
    if not metadata:
        raise ValueError(f"{path} carries no config in its metadata and has no config.json beside it")
    return metadata



def write_safetensors(target: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomic safetensors write; tensors are made contiguous and un-shared first."""
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    atomic_write(Path(target), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def write_json(target: Path, payload: Any) -> None:
    write_text_atomic(target, json.dumps(payload, indent=2, sort_keys=True) + "\n")
