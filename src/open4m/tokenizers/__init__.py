"""Tokenizers: every 4M modality to discrete tokens and back.

Every tokenizer has ``encode(x) -> LongTensor``, ``decode(tokens)``, ``from_pretrained`` and
``save_pretrained``; :func:`load_tokenizer` picks the right class from what a checkpoint holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from .config import DiVAEConfig, VQVAEConfig
from .divae import DiVAE
from .text import TextTokenizer
from .vq import CosineVQ, Memcodes
from .vqvae import VQVAE, VQTokenizer

__all__ = ["load_tokenizer", "VQVAE", "DiVAE", "VQTokenizer", "VQVAEConfig", "DiVAEConfig", "TextTokenizer",
           "CosineVQ", "Memcodes", "Tokenizer"]

Tokenizer = Union[VQTokenizer, TextTokenizer]


def _is_text(path: Path) -> bool:
    return path.suffix == ".json" and path.name != "config.json" or (path.is_dir() and (path / "tokenizer.json").exists())


def load_tokenizer(name_or_path: str | os.PathLike, *, encoder_only: bool = False, revision: str | None = None,
                   cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                   local_files_only: bool = False) -> Tokenizer:
    """A released name (``text``, ``4M_tokenizers_depth_8k_224-448``), a Hub id, a tokenizer JSON, a
    ``.safetensors`` file or a Hub-layout directory -> the tokenizer.

    The class comes from the checkpoint's config (``tokenizer_class``, or the official keys:
    a diffusion ``beta_schedule`` means DiVAE), so callers never need to know it. ``encoder_only``
    loads just encoder + quantizer (enough to tokenize). Hub files go through ``huggingface_hub``
    (``revision``, ``cache_dir``, ``token``, ``local_files_only`` and ``HF_HUB_OFFLINE`` as there).
    Released tokenizers get the input convention the registry records for them (``preprocess``).
    """
    from dataclasses import replace

    from ..errors import CheckpointError
    from ..hub import HubOptions
    from ..pretrained import find
    from .checkpoint import read_checkpoint, resolve_checkpoint
    from .config import config_from_dict

    options = HubOptions(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    path = resolve_checkpoint(name_or_path, options)
    if _is_text(path):
        return TextTokenizer.from_pretrained(path)
    state, raw = read_checkpoint(path)
    if "domains_in" in raw and "codebook_size" not in raw:  # else "unknown vqvae config keys" and FourM's every key
        raise CheckpointError(f"{path} is a FourM model, not a tokenizer; load it with open4m.load_model, or give one "
                              "of its tokenizers (the files in its tokenizers/ folder)")
    config = config_from_dict(raw)
    entry = find(str(name_or_path))
    if entry is not None and entry.preprocess and not config.preprocess:
        config = replace(config, preprocess=dict(entry.preprocess))
    cls = VQTokenizer if encoder_only else DiVAE if isinstance(config, DiVAEConfig) else VQVAE
    return cls.from_state(config, state, source=str(name_or_path)).eval()
