"""FourM checkpoints: the release layout, the Hub layout, and Hub ids — safetensors only.

Layouts read and written:
- *release*: one `.safetensors` file whose metadata is the flat config, each value a Python
  literal string (`"['rgb@224', 'caption']"`, `"True"`) — what the official 4M files are;
- *Hub*: a directory with `config.json` + `model.safetensors` (what `save_pretrained` writes);
- a Hub repo id (`EPFL-VILAB/4M-7_B_CC12M`), downloaded through huggingface_hub into a directory
  of the Hub layout.

The state-dict keys are the official ones. Loading is tolerant where the official files vary
(one or both names of a shared `mod_emb`, tied or untied decoder tables, recomputable sincos
tables of either length, zero LayerNorm-bias buffers) and strict everywhere else: a missing,
unexpected or mis-shaped weight is an error naming it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file as _st_save_file

from .. import modalities
from ..atomic import atomic_write
from ..hub import HubOptions, Origin, locate
from ..weights import (CONFIG_NAME, WEIGHTS_NAME, CheckpointError, read_safetensors, read_safetensors_metadata, unshared,
                       weights_and_config)
from .config import FourMConfig

__all__ = ["CheckpointError", "read_safetensors", "weights_and_config", "resolve_checkpoint", "locate_model",
           "load_config", "config_of", "metadata_of", "load_state_dict_into", "official_state_dict",
           "atomic_save_file", "start_grown_blocks_as_identity", "WEIGHTS_NAME", "CONFIG_NAME", "MODALITIES_KEY"]


def resolve_checkpoint(source: str | os.PathLike, *, revision: str | None = None,
                       cache_dir: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any] | None]:
    """Find the weights file (and Hub-layout config) for a file, a directory, a released name or a Hub repo id."""
    path, _ = locate_model(source, HubOptions(revision=revision, cache_dir=cache_dir))
    return weights_and_config(path)


def locate_model(source: str | os.PathLike, options: HubOptions | None = None) -> tuple[Path, Origin]:
    """A FourM's local file or folder and its origin (for files fetched later, such as its tokenizers)."""
    return locate(source, what="FourM", files=(WEIGHTS_NAME,), optional=(CONFIG_NAME,), options=options)


MODALITIES_KEY = "open4m_modalities"


def load_config(source: str | os.PathLike, *, keep_registered: bool = False, **kwargs: Any) -> FourMConfig:
    """The FourM config of a checkpoint, without reading its weights (`keep_registered`: `config_of`'s)."""
    weights, config = resolve_checkpoint(source, **kwargs)
    return config_of(weights, config, read_safetensors_metadata(weights), keep_registered=keep_registered)


def config_of(weights: Path, config: Mapping[str, Any] | None, metadata: Mapping[str, str], *,
              keep_registered: bool = False) -> FourMConfig:
    """The config of a checkpoint (`config.json` first, else its metadata), its own modalities registered.

    Checkpoints we write describe their non-official modalities in the metadata, so a model
    trained on user-registered modalities loads in a fresh process without the user's code.
    `keep_registered`: names already registered keep their entries (a checkpoint a training run only starts from).
    """
    if MODALITIES_KEY in metadata:
        try:
            specs = json.loads(metadata[MODALITIES_KEY])
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{weights}: corrupt {MODALITIES_KEY} metadata ({err})") from None
        modalities.register_specs(specs, source=str(weights), keep_registered=keep_registered)
    if config is not None:
        return FourMConfig.from_dict(config)
    if "domains_in" not in metadata and ("codebook_size" in metadata or "tokenizer_class" in metadata):
        raise CheckpointError(f"{weights} is a tokenizer, not a FourM model; load it with open4m.load_tokenizer (or "
                              "--tokenizers on the command line), and give the model's own file or folder as the model")
    if "domains_in" not in metadata and "fourm_encoder" in metadata:  # encoder.METADATA_KEY (that module imports this one)
        raise CheckpointError(f"{weights} is a fine-tuned FourM encoder (open4m finetune), not a FourM model: it has no "
                              "decoder to generate with; load it with open4m.model.FourMEncoder.from_pretrained, and give "
                              "a FourM model's file or folder as the model")
    if "domains_in" not in metadata:
        raise CheckpointError(f"{weights} has no FourM config (neither safetensors metadata nor {CONFIG_NAME} beside it)")
    return FourMConfig.from_metadata(metadata)


def metadata_of(config: FourMConfig) -> dict[str, str]:
    """Release-layout metadata plus the descriptions of the config's non-official modalities."""
    metadata = config.to_metadata()
    custom = modalities.specs_json([*config.domains_in, *config.domains_out])
    if custom is not None:
        metadata[MODALITIES_KEY] = custom
    return metadata


# -- mapping official state dicts onto a model ---------------------------------------------------
def _decoder_ties(state: Mapping[str, torch.Tensor], config: FourMConfig) -> bool:
    """Whether every sequence decoder's input table equals its output head (then they are tied)."""
    for name in config.domains_out:
        a = state.get(f"decoder_embeddings.{name}.token_emb.weight")
        b = state.get(f"decoder_embeddings.{name}.to_logits.weight")
        if a is not None and b is not None and a.shape == b.shape and not torch.equal(a, b):
            return False
    return True


def load_state_dict_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, strict: bool = True) -> None:
    """Copy official-layout weights into a FourM, with errors that name the offending keys."""
    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    unexpected, mismatched = [], []
    for key, value in state.items():
        if key not in own:
            # The official image-target decoders carry an unused input table.
            if re.match(r"decoder_embeddings\.[^.]+\.token_emb\.weight$", key):
                continue
            unexpected.append(key)
            continue
        target = own[key]
        if key in buffers and key.endswith("pos_emb"):
            # Fixed sincos tables are recomputed; the file's copy must agree where it overlaps, to the precision
            # it was stored in (a model saved after .half() or .to(torch.bfloat16) rounds them; values are in [-1, 1]).
            if not strict and value.shape[1] != target.shape[1] and value.shape[2:] == target.shape[2:]:
                continue  # a partial load (init_from) onto another token grid: the model's own table is its positions
            n = min(value.shape[1], target.shape[1])
            atol = max(1e-4, torch.finfo(value.dtype).eps) if value.is_floating_point() else 1e-4
            if value.shape[0] != 1 or value.shape[2] != target.shape[2] or not torch.allclose(
                    value[:, :n].float(), target[:, :n].float(), atol=atol):
                mismatched.append(f"{key}: positional table differs from the sincos table this model builds")
            continue
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target.shape)}")
            continue
        with torch.no_grad():
            target.copy_(value)
    aliases = _aliases(model)
    missing = []
    for key in own:
        if key in state or key in buffers and (key.endswith("pos_emb") or key.endswith(".bias")):
            continue
        if any(alias in state for alias in aliases.get(key, ())):
            continue
        missing.append(key)
    problems = []
    if mismatched:
        problems.append("shape or value mismatches: " + "; ".join(mismatched[:8]))
    if missing and strict:
        problems.append(f"{len(missing)} weights missing from the checkpoint, e.g. {missing[:5]}")
    if unexpected and strict:
        problems.append(f"{len(unexpected)} unexpected weights, e.g. {unexpected[:5]}")
    if problems:
        raise CheckpointError(
            "checkpoint does not match the model: " + " | ".join(problems)
            + ". Was it saved from a model with another config (modalities, sizes)? "
            "Load it with its own config, or pass strict=False to load the matching part only."
        )


# The layers of a transformer block that write into the residual stream: zeroed, the block adds nothing.
_RESIDUAL_WRITERS = re.compile(r"(^|\.)(attn|self_attn|cross_attn)\.proj\.(weight|bias)$|(^|\.)mlp\.fc2\.(weight|bias)$")


def start_grown_blocks_as_identity(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Zero the residual-writing layers of every encoder or decoder block of `model` that `state` has no weight of,
    so a model deeper than the checkpoint it starts from computes exactly what the checkpoint did (each new block
    adds zero to the residual stream) and training grows the new blocks from there, instead of starting from
    random blocks that scramble what the checkpoint had learnt. A stack the checkpoint has no block of at all (an
    encoder-only checkpoint's decoder) is new, not grown, and keeps its random start. Returns the number of new
    blocks per grown stack."""
    grown: dict[str, int] = {}
    for stack in ("encoder", "decoder"):
        if not any(k.startswith(f"{stack}.") for k in state):
            continue
        for index, block in enumerate(getattr(model, stack, None) or ()):
            prefix = f"{stack}.{index}."
            if any(k.startswith(prefix) for k in state):
                continue
            with torch.no_grad():
                for name, param in block.named_parameters():
                    if _RESIDUAL_WRITERS.search(name):
                        param.zero_()
            grown[stack] = grown.get(stack, 0) + 1
    return grown


def _aliases(model: torch.nn.Module) -> dict[str, tuple[str, ...]]:
    """State-dict names that hold the same tensor (shared mod_emb, tied decoder tables)."""
    by_ptr: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        by_ptr.setdefault(tensor.data_ptr(), []).append(name)
    return {n: tuple(o for o in names if o != n) for names in by_ptr.values() for n in names if len(names) > 1}


# -- writing -------------------------------------------------------------------------------------
def official_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The state dict in the official layout, each shared tensor written under all its names.

    ``state`` (default: ``model.state_dict()``) may be a gathered full state dict of a sharded model.
    """
    state = dict(model.state_dict() if state is None else state)
    for name in model.decoder_embeddings:
        key = f"decoder_embeddings.{name}.token_emb.weight"
        if key not in state:
            state[key] = state[f"decoder_embeddings.{name}.to_logits.weight"]
    return unshared(state)


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None,
                     *, overwrite: bool = False) -> Path:
    """Write a safetensors file atomically; never clobber unless asked."""
    return atomic_write(path, lambda tmp: _st_save_file(tensors, str(tmp), metadata=metadata), overwrite=overwrite)
