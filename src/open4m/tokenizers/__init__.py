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


def load_tokenizer(name_or_path: str | os.PathLike, *, encoder_only: bool = False) -> Tokenizer:
    """A tokenizer JSON, a ``.safetensors`` file, a Hub-layout directory or a Hub id -> the tokenizer.

    The class comes from the checkpoint's config (``tokenizer_class``, or the official keys:
    a diffusion ``beta_schedule`` means DiVAE), so callers never need to know it. ``encoder_only``
    loads just encoder + quantizer (enough to tokenize; works for official DiVAE checkpoints too).
    """
    from .checkpoint import read_checkpoint, resolve_checkpoint
    from .config import config_from_dict

    path = resolve_checkpoint(name_or_path)
    if _is_text(path):
        return TextTokenizer.from_pretrained(path)
    if encoder_only:
        return VQTokenizer.from_pretrained(path, encoder_only=True)
    state, raw = read_checkpoint(path)
    config = config_from_dict(raw)
    cls = DiVAE if isinstance(config, DiVAEConfig) else VQVAE
    return cls.from_state(config, state, source=str(name_or_path)).eval()
