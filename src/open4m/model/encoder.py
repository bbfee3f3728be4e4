"""The FourM encoder as a plain ViT backbone over one pixel modality, with downstream heads.

`FourMEncoder` is the encoder half of a FourM — the modality's patch embedding, the encoder
blocks (SDPA attention, unchanged), the register tokens and `encoder_norm` — run on fully
visible images, with the timm-style API downstream code expects: `forward_features` (normed
patch tokens), `forward_head`, `get_intermediate_layers` / `forward_intermediates` (several
depths for dense heads), `reset_classifier`. Its state-dict keys are FourM's own, so weights load
from any FourM checkpoint by name; the heads live under `head.`.

Two heads: `classification` (mean-pooled patch tokens -> LayerNorm -> Linear) and `dense`, a
small DPT-style head (reassemble four depths into maps at 4x, 2x, 1x and 1/2x the patch grid,
fuse them coarse to fine with residual conv units, upsample to the input size) with
`out_channels` outputs per pixel (classes for segmentation, 1 for depth).

A fine-tuned encoder saves as one safetensors file whose metadata holds its full description
(`fourm_encoder` JSON), so it loads back without the modality registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError, DataError
from .. import modalities
from ..modalities import Kind, Modality
from . import checkpoint
from .config import FourMConfig
from .embeddings import PixelEncoderEmbedding
from .fourm import init_weights
from .layers import EncoderBlock, _BlockOptions

METADATA_KEY = "fourm_encoder"
HEADS = ("none", "classification", "dense")


@dataclass
class EncoderConfig:
    """Everything that fixes a FourMEncoder's shapes: the pixel modality, the trunk, the head."""

    modality: str = "rgb@224"
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    sincos_pos_emb: bool = True
    dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden_dim: int = 3072
    act_layer: str = "GELU"
    gated_mlp: bool = False
    qkv_bias: bool = True
    proj_bias: bool = True
    mlp_bias: bool = True
    norm_bias: bool = True
    qk_norm: bool = False
    num_register_tokens: int = 0
    drop_path_rate: float = 0.0
    head: str = "none"
    num_classes: int = 0
    """Classification classes, or per-pixel output channels of the dense head."""
    head_layers: list = field(default_factory=list)
    """Block indices the dense head reads (empty: four evenly spaced depths ending at the last)."""
    head_features: int = 64
    """Channel width of the dense head's maps (DPT uses 256)."""

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"head={self.head!r}: use one of {HEADS}")
        self.head_layers = [int(i) for i in self.head_layers] or default_head_layers(self.depth)
        bad = [i for i in self.head_layers if not 0 <= i < self.depth]
        if bad:
            raise ConfigError(f"head_layers {bad} are outside the encoder's blocks 0..{self.depth - 1}")

    @classmethod
    def from_fourm(cls, config: FourMConfig, modality: Modality, **head: Any) -> "EncoderConfig":
        return cls(modality=modality.name, image_size=modality.image_size or config.image_size,
                   patch_size=modality.patch_size or config.patch_size, num_channels=modality.num_channels or 3,
                   sincos_pos_emb=modality.sincos_pos_emb, dim=config.dim, depth=config.encoder_depth,
                   num_heads=config.num_heads, mlp_hidden_dim=config.mlp_hidden_dim, act_layer=config.act_layer,
                   gated_mlp=config.gated_mlp, qkv_bias=config.qkv_bias, proj_bias=config.proj_bias,
                   mlp_bias=config.mlp_bias, norm_bias=config.norm_bias, qk_norm=config.qk_norm,
                   num_register_tokens=config.num_register_tokens, **head)

    def pixel_modality(self) -> Modality:
        """A registry-free Modality record for the patch embedding."""
        return Modality(self.modality, Kind.PIXELS, image_size=self.image_size, patch_size=self.patch_size,
                        num_channels=self.num_channels, encoder=True, sincos_pos_emb=self.sincos_pos_emb)


def default_head_layers(depth: int, count: int = 4) -> list[int]:
    """`count` evenly spaced block indices ending at the last block (12 blocks -> [2, 5, 8, 11])."""
    count = min(count, depth)
    return sorted({depth - 1 - round(k * depth / count) for k in range(count)})


def pixel_modalities(model: nn.Module) -> list[str]:
    """The pixel input modalities of a FourM (the ones a FourMEncoder can take)."""
    return [m for m, emb in model.encoder_embeddings.items() if isinstance(emb, PixelEncoderEmbedding)]


def _pick_modality(available: list[str], modality: str | None, where: str) -> str:
    if modality is None:
        if len(available) != 1:
            raise ConfigError(f"{where} has pixel modalities {available}; pass modality= one of them"
                             if available else f"{where} has no pixel input modality (like rgb@224) to encode")
        return available[0]
    if modality not in available:
        raise ConfigError(f"{where} has no pixel input modality {modality!r}; its pixel inputs are {available}")
    return modality


# ------------------------------------------------------------------------------------------
# Heads
# ------------------------------------------------------------------------------------------
class ClassificationHead(nn.Module):
    """Global average pool of the patch tokens -> LayerNorm -> Linear (MAE-style fine-tuning head)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(self.fc, nn.Linear):
            nn.init.trunc_normal_(self.fc.weight, std=2e-5)
            nn.init.zeros_(self.fc.bias)

    def forward(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.norm(tokens.mean(dim=1))
        return pooled if pre_logits else self.fc(pooled)


class _ResidualConvUnit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _resampler(channels: int, scale: float) -> nn.Module:
    if scale >= 2:
        return nn.ConvTranspose2d(channels, channels, int(scale), stride=int(scale))
    if scale == 1:
        return nn.Identity()
    return nn.Conv2d(channels, channels, 3, stride=2, padding=1)


class DenseHead(nn.Module):
    """A light DPT-style head: token maps of several depths -> one (B, out_channels, H, W) map.

    Map k of n (shallow to deep) is layer-normed, projected to `features` channels and resampled to
    2^(n-2-k) times the patch grid (4x, 2x, 1x, 1/2x for four maps); fusion runs deep to shallow,
    each step adding the next finer map and refining with residual conv units; the result is
    upsampled to the input size and projected to `out_channels`.
    """

    def __init__(self, dim: int, out_channels: int, num_maps: int, features: int = 64) -> None:
        super().__init__()
        scales = [2.0 ** (num_maps - 2 - k) for k in range(num_maps)] if num_maps > 1 else [1.0]
        # A LayerNorm per depth: un-normed block outputs of a pre-trained trunk are far from unit scale.
        self.project = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, features))
                                     for _ in range(num_maps))
        self.resample = nn.ModuleList(_resampler(features, s) for s in scales)
        self.refine_skip = nn.ModuleList(_ResidualConvUnit(features) for _ in range(num_maps))
        self.refine_out = nn.ModuleList(_ResidualConvUnit(features) for _ in range(num_maps))
        hidden = max(features // 2, 8)
        self.out = nn.Sequential(nn.Conv2d(features, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, out_channels, 1))

    def forward(self, layers: Sequence[torch.Tensor], grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        maps = []
        for tokens, proj, resample in zip(layers, self.project, self.resample):
            x = rearrange(proj(tokens), "b (h w) c -> b c h w", h=grid[0], w=grid[1])
            maps.append(resample(x))
        y = None
        for k in reversed(range(len(maps))):
            skip = self.refine_skip[k](maps[k])
            if y is not None:
                skip = skip + F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = self.refine_out[k](skip)
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.out(y)


# ------------------------------------------------------------------------------------------
# The encoder
# ------------------------------------------------------------------------------------------
class FourMEncoder(nn.Module):
    """The FourM encoder over one pixel modality, as a ViT backbone with an optional head."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        opts = _BlockOptions(c.dim, c.num_heads, c.mlp_hidden_dim, c.act_layer, c.gated_mlp, c.qkv_bias,
                             c.proj_bias, c.mlp_bias, c.norm_bias, c.qk_norm)
        self.encoder_embeddings = nn.ModuleDict({
            c.modality: PixelEncoderEmbedding(c.pixel_modality(), c.dim, c.image_size, c.patch_size)})
        if c.num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.zeros(1, c.num_register_tokens, c.dim))
        rates = torch.linspace(0, c.drop_path_rate, c.depth).tolist()
        self.encoder = nn.ModuleList(EncoderBlock(opts, r) for r in rates)
        self.encoder_norm = opts.norm()
        init_weights(self)  # the trunk starts as a FourM's does (from-scratch baselines)
        self.head = self._build_head()

    def _build_head(self) -> nn.Module:
        c = self.config
        if c.head == "classification":
            return ClassificationHead(c.dim, c.num_classes)
        if c.head == "dense":
            if c.num_classes < 1:
                raise ConfigError("the dense head needs num_classes >= 1 output channels (classes, or 1 for depth)")
            return DenseHead(c.dim, c.num_classes, len(c.head_layers), c.head_features)
        return nn.Identity()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_fourm(cls, model: nn.Module, modality: str | None = None, **head: Any) -> "FourMEncoder":
        """The encoder of a FourM over one of its pixel modalities; weights are copied, not shared.

        `head` takes EncoderConfig head fields: head="classification"|"dense", num_classes,
        head_layers, head_features, drop_path_rate.
        """
        name = _pick_modality(pixel_modalities(model), modality, "this FourM")
        config = EncoderConfig.from_fourm(model.config, model.modality_info[name], **head)
        encoder = cls(config)
        prefixes = (f"encoder_embeddings.{name}.", "encoder.", "encoder_norm.", "register_tokens")
        state = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
        checkpoint.load_state_dict_into(encoder, state, strict=False)
        _check_trunk_loaded(encoder, state)
        return encoder.to(next(model.parameters()).device)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, modality: str | None = None, *,
                        map_location: str | torch.device = "cpu", revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, **head: Any) -> "FourMEncoder":
        """A fine-tuned encoder file, or the encoder part of a full FourM checkpoint (file, Hub dir or id).

        From a full FourM only encoder-side weights are read (the decoder is never built). Custom
        modalities register from the checkpoint's metadata where it describes them; older files
        (e.g. the shipped world bundle) need them registered first.
        """
        weights, config_dict = checkpoint.resolve_checkpoint(source, revision=revision, cache_dir=cache_dir)
        state, metadata = checkpoint.read_safetensors(weights)
        if METADATA_KEY in metadata:
            if head:
                raise ConfigError(f"{weights} is a fine-tuned encoder with its own head; head options {sorted(head)} "
                                 "apply only when starting from a FourM checkpoint (use reset_classifier to change it)")
            config = _config_from_json(metadata[METADATA_KEY], weights)
            if modality is not None and modality != config.modality:
                raise ConfigError(f"{weights} encodes {config.modality!r}, not {modality!r}")
            encoder = cls(config)
            checkpoint.load_state_dict_into(encoder, state, strict=True)
            return encoder.to(map_location).eval()
        fourm_config = checkpoint.config_of(weights, config_dict, metadata)  # registers its custom modalities
        from .. import modalities

        infos = modalities.get_many(fourm_config.domains_in)
        available = [m for m in fourm_config.domains_in if infos[m].kind is Kind.PIXELS]
        name = _pick_modality(available, modality, str(weights))
        encoder = cls(EncoderConfig.from_fourm(fourm_config, infos[name], **head))
        prefixes = (f"encoder_embeddings.{name}.", "encoder.", "encoder_norm.", "register_tokens")
        trunk = {k: v for k, v in state.items() if k.startswith(prefixes)}
        checkpoint.load_state_dict_into(encoder, trunk, strict=False)
        _check_trunk_loaded(encoder, trunk)
        return encoder.to(map_location).eval()

    def file_tensors(self, state: Mapping[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """What the file holds: the (given or own) state dict and the EncoderConfig as JSON metadata."""
        from ..weights import unshared

        return unshared(self.state_dict() if state is None else state), {METADATA_KEY: json.dumps(asdict(self.config))}

    def save_file(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """One safetensors file, the EncoderConfig as JSON in its metadata (atomic)."""
        tensors, metadata = self.file_tensors()
        return checkpoint.atomic_save_file(tensors, path, metadata, overwrite=overwrite)

    def save_pretrained(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write `path` (a .safetensors file) or `path/model.safetensors` (a directory)."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path.mkdir(parents=True, exist_ok=True)
            path = path / checkpoint.WEIGHTS_NAME
        return self.save_file(path, overwrite=overwrite)

    # -- timm-style attributes ---------------------------------------------------------------
    @property
    def embedding(self) -> PixelEncoderEmbedding:
        return self.encoder_embeddings[self.config.modality]

    @property
    def modality(self) -> str:
        return self.config.modality

    @property
    def num_features(self) -> int:
        return self.config.dim

    embed_dim = num_features

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def num_classes(self) -> int:
        return self.config.num_classes if self.config.head != "none" else 0

    def grid_size(self, image_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """Patch grid (rows, cols) of an input size (default: the pre-training size)."""
        h, w = _pair(image_size if image_size is not None else self.config.image_size)
        p = self.config.patch_size
        if h % p or w % p:
            raise DataError(f"{self.modality}: image size {h}x{w} is not a multiple of the patch size {p}; "
                             "resize or crop the input to a multiple of it")
        return h // p, w // p

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classification head with `num_classes` outputs (0: pooled features only)."""
        self.config.head, self.config.num_classes = "classification", num_classes
        self.head = ClassificationHead(self.config.dim, num_classes).to(self.encoder_norm.weight.device)

    def no_weight_decay(self) -> set[str]:
        """Norms, biases and positional / modality / register tokens: never decayed."""
        return {n for n, p in self.named_parameters()
                if p.dim() < 2 or n.rsplit(".", 1)[-1] in ("mod_emb", "pos_emb", "register_tokens")}

    # -- forward -------------------------------------------------------------------------------
    def _pos_emb(self, grid: tuple[int, int]) -> torch.Tensor:
        """The positional table for `grid`, bicubically resampled when it differs from the pre-training grid."""
        emb = self.embedding
        native = self.grid_size()
        pos = emb.pos_emb
        if grid != native:
            table = rearrange(pos, "1 (h w) d -> 1 d h w", h=native[0], w=native[1])
            table = F.interpolate(table.float(), size=grid, mode="bicubic", align_corners=False).to(pos.dtype)
            pos = rearrange(table, "1 d h w -> 1 (h w) d")
        return pos + emb.mod_emb

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.dim() != 4 or x.shape[1] != self.config.num_channels:
            raise DataError(f"{self.modality}: expected images (B, {self.config.num_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        grid = self.grid_size(tuple(x.shape[-2:]))
        p = self.config.patch_size
        patches = rearrange(x, "b c (nh ph) (nw pw) -> b (nh nw) (ph pw c)", ph=p, pw=p)
        tokens = self.embedding.proj(patches) + self._pos_emb(grid)
        if self.config.num_register_tokens > 0:
            tokens = torch.cat([self.register_tokens.expand(x.shape[0], -1, -1), tokens], dim=1)
        return tokens, grid

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                              norm: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(normed final patch tokens, patch tokens after the blocks in `indices`), each (B, N, D).

        `indices`: an int n for the last n blocks, a list of block indices, or None for the dense
        head's layers. `norm=True` applies `encoder_norm` to the intermediates too.
        """
        h, taken = self._run(x, self._indices(indices), norm, stop_early=False)
        return self.encoder_norm(h)[:, self.config.num_register_tokens:], taken

    def _run(self, x: torch.Tensor, wanted: list[int], norm: bool,
             stop_early: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Blocks over the tokens of `x`, collecting the patch tokens after the `wanted` blocks."""
        r = self.config.num_register_tokens
        h, _ = self._tokens(x)
        taken = []
        for i, block in enumerate(self.encoder):
            if stop_early and i > max(wanted):
                break
            h = block(h)
            if i in wanted:
                taken.append((self.encoder_norm(h) if norm else h)[:, r:])
        return h, taken

    def unused_by_head(self) -> list[str]:
        """Parameter-name prefixes the dense head never reads: encoder_norm and blocks after its deepest layer."""
        if self.config.head != "dense":
            return []
        return ["encoder_norm"] + [f"encoder.{i}" for i in range(max(self.config.head_layers) + 1, self.config.depth)]

    def _indices(self, indices: int | Sequence[int] | None) -> list[int]:
        depth = self.config.depth
        if indices is None:
            return list(self.config.head_layers)
        if isinstance(indices, int):
            if not 1 <= indices <= depth:
                raise ConfigError(f"asked for the last {indices} layers of a {depth}-block encoder")
            return list(range(depth - indices, depth))
        out = [i + depth if i < 0 else i for i in indices]
        bad = [i for i in out if not 0 <= i < depth]
        if bad:
            raise ConfigError(f"layer indices {list(indices)} are outside the encoder's blocks 0..{depth - 1}")
        return sorted(set(out))

    def get_intermediate_layers(self, x: torch.Tensor, n: int | Sequence[int] = 1, reshape: bool = False,
                                norm: bool = False) -> tuple[torch.Tensor, ...]:
        """Patch tokens after the last `n` blocks (or the blocks listed); `reshape` gives (B, D, h, w) maps."""
        _, layers = self.forward_intermediates(x, n, norm=norm)
        if reshape:
            h, w = self.grid_size(tuple(x.shape[-2:]))
            layers = [rearrange(t, "b (h w) d -> b d h w", h=h, w=w) for t in layers]
        return tuple(layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normed patch tokens (B, N, D) of fully visible images; register tokens are dropped."""
        h, _ = self._tokens(x)
        for block in self.encoder:
            h = block(h)
        return self.encoder_norm(h)[:, self.config.num_register_tokens:]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Classification logits (or the pooled, normed features with `pre_logits`) from forward_features."""
        if self.config.head == "dense":
            raise ConfigError("forward_head takes patch tokens to a classification head; the dense head needs "
                              "several depths — call the model itself (forward)")
        if isinstance(self.head, nn.Identity):
            return features.mean(dim=1) if pre_logits else features
        return self.head(features, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classification: (B, num_classes) logits. Dense: (B, out_channels, H, W). No head: patch tokens."""
        if self.config.head == "dense":
            _, layers = self._run(x, list(self.config.head_layers), norm=False, stop_early=True)
            return self.head(layers, self.grid_size(tuple(x.shape[-2:])), tuple(x.shape[-2:]))
        return self.forward_head(self.forward_features(x))


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_trunk_loaded(encoder: FourMEncoder, state: dict[str, torch.Tensor]) -> None:
    """Every trunk weight must come from the checkpoint (only the head may be fresh)."""
    buffers = {n for n, _ in encoder.named_buffers()}  # sincos tables and fixed zero biases are rebuilt
    missing = [k for k in encoder.state_dict() if not k.startswith("head.") and k not in state and k not in buffers]
    if missing:
        raise checkpoint.CheckpointError(f"the checkpoint lacks encoder weights {missing[:5]}")


def _config_from_json(text: str, where: Path) -> EncoderConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise checkpoint.CheckpointError(f"{where}: unreadable {METADATA_KEY} metadata ({err})") from None
    if not isinstance(data, dict):
        raise checkpoint.CheckpointError(f"{where}: {METADATA_KEY} metadata must be a JSON object of settings, got "
                                         f"{data!r:.60}")
    known = {f.name for f in fields(EncoderConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise checkpoint.CheckpointError(f"{where}: unknown encoder config keys {unknown}; "
                                         "was it written by a newer open4m?")
    try:
        modalities.check_types(EncoderConfig, data, f"{where}: {METADATA_KEY}")
    except ConfigError as err:
        raise checkpoint.CheckpointError(str(err)) from None
    return EncoderConfig(**data)


__all__ = ["FourMEncoder", "EncoderConfig", "ClassificationHead", "DenseHead", "default_head_layers",
           "pixel_modalities"]
