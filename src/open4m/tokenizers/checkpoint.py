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
from ..errors import CheckpointError
from ..hub import HubOptions, hub_file, is_hub_id, locate, url_file
from ..weights import read_safetensors, weights_and_config
from ..pretrained import find

__all__ = ["resolve_checkpoint", "read_checkpoint", "write_safetensors", "write_json", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEXT_NAME = "tokenizer.json"


def resolve_checkpoint(name_or_path: str | os.PathLike, options: HubOptions | None = None) -> Path:
    """A file, a directory, a released name (``text``, ``4M_tokenizers_rgb_16k_224-448``) or a Hub id
    -> a local file or directory holding the tokenizer."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    entry = find(str(name_or_path))
    if entry is not None and entry.url:
        return url_file(entry.url, entry.filename, entry.sha256, options, what=f"tokenizer {entry.name!r}")
    if entry is None and is_hub_id(str(name_or_path)):  # a community repo: VQ weights or a text tokenizer
        weights = hub_file(str(name_or_path), WEIGHTS_NAME, options, what="tokenizer", required=False)
        if weights is None:
            return hub_file(str(name_or_path), TEXT_NAME, options, what="tokenizer")
        hub_file(str(name_or_path), CONFIG_NAME, options, what="tokenizer", required=False)
        return weights.parent
    folder, _ = locate(name_or_path, what="tokenizer", files=(WEIGHTS_NAME,), optional=(CONFIG_NAME,), options=options)
    return folder


def read_checkpoint(name_or_path: str | os.PathLike, options: HubOptions | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (state dict, raw config dict). The config comes from config.json when present, else metadata."""
    weights, config = weights_and_config(resolve_checkpoint(name_or_path, options))
    state, metadata = read_safetensors(weights)
    return state, (config if config is not None else _metadata_config(metadata, weights))


def _metadata_config(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    metadata = {k: v for k, v in metadata.items() if k != "format"}
    if not metadata:
        raise CheckpointError(f"{path} carries no config in its metadata and has no config.json beside it")
    return metadata


def write_safetensors(target: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomic safetensors write; tensors are made contiguous and un-shared first."""
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    atomic_write(Path(target), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def write_json(target: Path, payload: Any) -> None:
    write_text_atomic(target, json.dumps(payload, indent=2, sort_keys=True) + "\n")
