"""VQ-VAE tokenizers for image-like modalities and vectors, loading the official checkpoints as-is.

:class:`VQTokenizer` holds what every VQ tokenizer shares — optional class embedding (semantic
segmentation), encoder (ViT or bottleneck MLP), ``quant_proj``, quantizer — and the common
interface (``encode``/``decode``/``from_pretrained``/``save_pretrained``). :class:`VQVAE` adds the
deterministic decoder (``post_quant_proj`` + ViT or MLP); the diffusion decoder lives in ``divae.py``.

Module names mirror the released state dicts (``encoder.blocks.0.attn.qkv.weight``,
``quantize._codebook.embed``, ``cls_emb.weight`` ...), so official weights load without renaming.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from ..atomic import write_text_atomic
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_checkpoint, write_json, write_safetensors
from .config import VQVAEConfig, config_from_dict, config_to_dict, config_to_metadata
from .mlp_vq import BottleneckMLP, parse_mlp_name
from .preprocess import Preprocessor, default_preprocess
from .vit import ViTDecoder, ViTEncoder, resolve_vit_size
from .vq import CosineVQ, Memcodes, QuantizerOutput
from ..errors import CheckpointError, ConfigError, DataError

__all__ = ["VQTokenizer", "VQVAE"]

_DECODER_KEYS = ("decoder.", "post_quant_proj.")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VQTokenizer(nn.Module):
    """Encoder + quantizer, and the interface shared by every VQ tokenizer.

    On its own it is an encoder-only tokenizer (``from_pretrained(..., encoder_only=True)``): enough to
    pre-tokenize data with any official checkpoint, including DiVAEs whose decoders open4m lacks.
    """

    config_class: ClassVar[type[VQVAEConfig]] = VQVAEConfig

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.preprocessor = Preprocessor.from_dict(
            c.preprocess or default_preprocess(c.n_channels, c.n_labels, c.patch_proj, c.is_mlp, c.modality)
        )
        if c.n_labels:
            self.cls_emb = nn.Embedding(c.n_labels, c.n_channels)
        if c.is_mlp:
            mlp = parse_mlp_name(c.enc_type)
            self.encoder: nn.Module = BottleneckMLP(mlp, c.n_channels, mlp.width)
            enc_dim = mlp.width
        else:
            size = resolve_vit_size(c.enc_type, c.enc_dim, c.enc_depth, c.enc_heads)
            self.encoder = ViTEncoder(c.n_channels, size, c.patch_size, c.image_size_enc or c.image_size,
                                      patch_proj=c.patch_proj, post_mlp=c.post_mlp)
            enc_dim = size.dim
        self.quant_proj = nn.Conv2d(enc_dim, c.latent_dim, 1)
        if c.quant_type == "memcodes":
            self.quantize: nn.Module = Memcodes(c.latent_dim, c.codebook_size, heads=c.num_codebooks)
        else:
            self.quantize = CosineVQ(
                c.latent_dim, c.codebook_size, heads=c.num_codebooks, decay=c.ema_decay,
                commitment_weight=c.commitment_weight, threshold_dead_code=c.threshold_ema_dead_code,
                kmeans_init=c.kmeans_init,
            )

    # -- the shared interface -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def prepare_input(self, x: Any) -> torch.Tensor:
        """Natural form (or a model-ready tensor) -> encoder input ``(B, C, H, W)``."""
        self._check_channels(x)
        x = self.preprocessor.to_model(x)
        device = self.quant_proj.weight.device
        c = self.config
        if c.n_labels:
            if x.ndim != 3 or x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                raise DataError(f"this segmentation tokenizer expects class ids (B, H, W), got {x.dtype} {tuple(x.shape)}")
            if int(x.min()) < 0 or int(x.max()) >= c.n_labels:
                raise DataError(f"class ids must lie in [0, {c.n_labels}), got [{int(x.min())}, {int(x.max())}]")
            return self.cls_emb(x.to(device).long()).permute(0, 3, 1, 2)
        if c.is_mlp and x.ndim == 2:
            x = x[:, :, None, None]
        if x.ndim != 4 or x.shape[1] != c.n_channels:
            raise DataError(f"this tokenizer expects input (B, {c.n_channels}, H, W), got {tuple(x.shape)}")
        x = x.to(device=device, dtype=self.quant_proj.weight.dtype)
        if c.undo_std:
            mean = x.new_tensor(_IMAGENET_MEAN).view(1, -1, 1, 1)
            std = x.new_tensor(_IMAGENET_STD).view(1, -1, 1, 1)
            x = 2.0 * (x * std + mean) - 1.0
        return x

    def _check_channels(self, x: Any) -> None:
        """A colour image given to a one-channel tokenizer (RGB to depth or edges) or a grey one to a colour
        tokenizer is refused by name: as a batch of grey maps or a resized array it would pass unnoticed."""
        c = self.config
        got = _image_channels(x)
        if c.n_labels or c.is_mlp or got is None or (got >= 3) == (c.n_channels >= 3):
            return
        who = f"the {c.modality} tokenizer" if c.modality else "this tokenizer"
        kind = "colour" if got >= 3 else "one-channel"
        raise DataError(f"{who} takes {c.n_channels}-channel images but got a {kind} image ({got} channels); give it "
                        f"{c.modality or 'the data it was trained on'}, or tokenize this image with the tokenizer of "
                        "its own modality")

    def quantize_input(self, x: Any) -> QuantizerOutput:
        """Encoder + projection + quantizer: the training path, with gradients and codebook updates."""
        h = self.encoder(self.prepare_input(x))
        return self.quantize(self.quant_proj(h))

    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """Input in natural or model form -> token ids ``(B, h, w)`` (``(B, heads, h, w)`` for several heads)."""
        return self.quantize_input(x).indices

    def tokens_to_latent(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids in any accepted layout -> quantized latent ``(B, latent_dim, h, w)``."""
        return self.quantize.indices_to_embedding(self.as_token_grid(tokens))

    def as_token_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat ``(B, N)`` token ids (as the 4M model holds them) -> the quantizer's grid layout."""
        if not isinstance(tokens, torch.Tensor):
            tokens = torch.as_tensor(np.asarray(tokens))
        tokens = tokens.to(self.quant_proj.weight.device)
        heads = self.config.num_codebooks
        if tokens.ndim != 2:
            return tokens
        n = tokens.shape[1]
        side = math.isqrt(n // heads) if n % heads == 0 else 0
        if side * side * heads != n:
            raise DataError(f"cannot lay {n} tokens on a square grid with {heads} head(s); pass (B, h, w) tokens")
        grid = tokens.reshape(tokens.shape[0], heads, side, side)
        return grid[:, 0] if heads == 1 else grid

    def decode_latent(self, latent: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        raise ConfigError("this tokenizer was loaded encoder-only and cannot decode; load it without encoder_only=True")

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Token ids -> model-space output (e.g. [-1, 1] RGB, class logits); see ``to_numpy``/``to_pil``."""
        return self.decode_latent(self.tokens_to_latent(tokens), **kwargs)

    def to_numpy(self, decoded: torch.Tensor) -> np.ndarray:
        """Decoded output -> the modality's natural form (uint8 images, class-id maps, vectors ...)."""
        return self.preprocessor.to_numpy(decoded)

    def to_pil(self, decoded: torch.Tensor) -> list:
        return self.preprocessor.to_pil(decoded)

    def num_tokens(self, image_size: int | None = None) -> int:
        h, w = self.config.grid(image_size)
        return h * w * self.config.num_codebooks

    # -- persistence ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, encoder_only: bool = False,
                        map_location: str | torch.device = "cpu") -> "VQTokenizer":
        """Load from a ``.safetensors`` file (config in metadata), a Hub-layout directory, or a Hub id.

        ``encoder_only`` keeps the encoder and quantizer and drops the decoder weights.
        """
        state, raw = read_checkpoint(name_or_path)
        builder = VQTokenizer if encoder_only else cls
        return builder.from_state(config_from_dict(raw), state, source=str(name_or_path)).to(map_location).eval()

    @classmethod
    def complete_config(cls, config: VQVAEConfig, state: dict[str, torch.Tensor]) -> VQVAEConfig:
        """``config`` with whatever the checkpoint's shapes imply and the config leaves open filled in."""
        return config

    @classmethod
    def from_state(cls, config: VQVAEConfig, state: dict[str, torch.Tensor], source: str = "checkpoint") -> "VQTokenizer":
        """Build from a config and load a state dict into it (strict, with readable errors).

        Called on :class:`VQTokenizer` itself it builds the encoder-only tokenizer and ignores decoder weights.
        """
        if not isinstance(config, cls.config_class):
            raise CheckpointError(f"{source} is a {config.tokenizer_class!r} tokenizer; load it with open4m.load_tokenizer()")
        if cls is VQTokenizer:  # encoder-only: the decoder's weights are not needed
            state = {k: v for k, v in state.items() if not k.startswith(_DECODER_KEYS)}
        model = cls(cls.complete_config(config, state))
        model.load_official_state_dict(state, source=source)
        return model

    def load_official_state_dict(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Strict load with errors that say which keys or shapes disagree with the config."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            only_decoder = all(k.startswith(_DECODER_KEYS) for k in (*missing, *unexpected))
            raise CheckpointError(
                f"{source} does not match this {type(self).__name__} config: missing keys {missing[:8]}"
                f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
                f"{' ...' if len(unexpected) > 8 else ''}. Is the config (enc_type, dec_type, post_mlp, n_labels ...) "
                "right?" + (" Its encoder matches: load it with encoder_only=True to tokenize only." if only_decoder else "")
            )
        wrong = [f"{k}: checkpoint {tuple(v.shape)} vs config {tuple(own[k].shape)}"
                 for k, v in state.items() if v.shape != own[k].shape]
        if wrong:
            hint = " (codebook_size / vocab mismatch)" if any("codebook" in w or "codes" in w for w in wrong) else ""
            raise CheckpointError(f"{source}: tensor shapes disagree with the config{hint}: " + "; ".join(wrong[:6]))
        self.load_state_dict(state, strict=True)

    def save_pretrained(self, path: str | os.PathLike, *, card: Mapping[str, Any] | None = None) -> Path:
        """Save as a directory (``model.safetensors`` + ``config.json`` + a generated ``README.md`` card) or,
        for a ``.safetensors`` path, as one self-describing file. The safetensors metadata always carries
        the config."""
        from ..card import tokenizer_card

        path = Path(path)
        state = self.state_dict()
        metadata = config_to_metadata(self.config)
        if path.suffix == ".safetensors":
            write_safetensors(path, state, metadata)
            return path
        write_safetensors(path / WEIGHTS_NAME, state, metadata)
        config = config_to_dict(self.config)
        write_json(path / CONFIG_NAME, config)
        write_text_atomic(path / "README.md", tokenizer_card(path.name, config, {"repo_id": str(path), **(card or {})}))
        return path

    def push_to_hub(self, repo_id: str, *, card: Mapping[str, Any] | None = None, private: bool | None = None,
                    token: str | bool | None = None, commit_message: str = "Upload tokenizer with open4m",
                    branch: str | None = None, create_pr: bool = False) -> str:
        """`save_pretrained` into a temporary folder and upload it to the Hub repo ``repo_id``; returns the commit URL."""
        from ..hub import push_folder

        info = {"repo_id": repo_id, **(card or {})}
        return push_folder(repo_id, lambda d: self.save_pretrained(d, card=info), private=private, token=token,
                           commit_message=commit_message, branch=branch, create_pr=create_pr)


def _image_channels(x: Any) -> int | None:
    """Channels of an image in natural form when they are unambiguous (a PIL image, an (H, W, 3|4) or
    (B, H, W, 3|4) array, an (H, W) map), else None (tensors are model form; (B, H, W) may be a batch)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            return 1
        if x.ndim in (3, 4) and x.shape[-1] in (3, 4) and min(x.shape[-3:-1]) > 4:
            return int(x.shape[-1])
        return None
    getbands = getattr(x, "getbands", None)  # a PIL image (PIL stays an optional import here)
    if getbands is None:
        return None
    return 3 if getattr(x, "mode", "") == "P" else len(getbands())


class VQVAE(VQTokenizer):
    """VQ-VAE with a deterministic decoder (ViT or bottleneck MLP)."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        c = config
        if c.is_mlp:
            if not c.dec_type.startswith("BottleneckMLP"):
                raise ConfigError(f"an MLP encoder needs an MLP decoder, got dec_type={c.dec_type!r}")
            size = parse_mlp_name(c.dec_type)
            self.decoder: nn.Module = BottleneckMLP(size, size.width, c.out_channels)
            dec_dim = size.width
        else:
            vit = resolve_vit_size(c.dec_type, c.dec_dim, c.dec_depth, c.dec_heads)
            self.decoder = ViTDecoder(c.out_channels, vit, c.patch_size_dec or c.patch_size, c.image_size_dec or c.image_size,
                                      patch_proj=c.patch_proj, post_mlp=c.post_mlp, out_conv=c.out_conv)
            dec_dim = vit.dim
        self.post_quant_proj = nn.Conv2d(c.latent_dim, dec_dim, 1)

    def decode_latent(self, latent: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if kwargs:
            raise ConfigError(f"VQVAE.decode takes no options, got {sorted(kwargs)}; drop them (only diffusion "
                              "decoders take sampling options)")
        return self.decoder(self.post_quant_proj(latent))

    def forward(self, x: Any) -> tuple[torch.Tensor, QuantizerOutput]:
        """Training forward: reconstruction (model space) and the quantizer output (loss, ids)."""
        q = self.quantize_input(x)
        return self.decoder(self.post_quant_proj(q.quantized)), q

