"""Each tokenizer's input convention, made explicit and carried in its config.

The official tokenizers silently expect specific value ranges (RGB in [-1, 1] — Inception mean/std
0.5, *not* ImageNet statistics —, depth robustly standardised per image, class maps shifted so
that 0 means "no class"). Here the convention is data in the config (``preprocess``), and
:class:`Preprocessor` turns a modality's natural form (PIL image, uint8 array, depth in metres,
class-index map, feature map, vector) into the model's input, and model outputs back.

Tensors are taken as already model-ready (that is how the parity fixtures and training loops call
tokenizers); PIL images and NumPy arrays are converted.

``input`` kinds: ``image`` (uint8 or [0, 1] float -> (x - mean) / std; one-channel tokenizers also take
a batch of grey maps (B, H, W): edges in [-1, 1], SAM instance masks in [0, 1]), ``class_map`` (integer ids,
resized with nearest), ``depth`` (metres -> robust per-image standardisation), ``features`` (float
maps, unchanged) and ``vector`` ((B, C) -> (B, C, 1, 1)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

__all__ = ["Preprocessor", "default_preprocess", "robust_standardize"]

_KINDS = ("image", "class_map", "depth", "features", "vector")
_MODES = ("nearest", "bilinear", "bicubic")


def default_preprocess(n_channels: int, n_labels: int | None, patch_proj: bool, is_mlp: bool,
                       modality: str | None = None) -> dict[str, Any]:
    """The official convention of a tokenizer whose config has none: its modality's preset when the
    architecture alone would mislead (a one-channel edge map or SAM mask is not depth), else what the
    architecture implies."""
    if modality:
        import copy

        from .presets import OFFICIAL_TOKENIZERS

        spec = OFFICIAL_TOKENIZERS.get(modality.split("@", 1)[0])
        if spec is not None and "preprocess" in spec.config:
            return copy.deepcopy(spec.config["preprocess"])
    if n_labels:
        return {"input": "class_map", "interpolation": "nearest"}
    if is_mlp:
        return {"input": "vector"}
    if not patch_proj:
        return {"input": "features", "interpolation": "bilinear"}
    if n_channels == 1:
        return {"input": "depth", "interpolation": "bilinear"}
    return {"input": "image", "mean": [0.5] * n_channels, "std": [0.5] * n_channels, "interpolation": "bicubic"}


def robust_standardize(depth: torch.Tensor, trim: float = 0.1, eps: float = 1e-6) -> torch.Tensor:
    """Per-image (d - mean) / std over the values between the ``trim`` and ``1 - trim`` quantiles.

    Why: metric depth varies by orders of magnitude across scenes; the official depth tokenizers
    were trained on this scale-free form, with the extreme 10% on each side ignored as outliers.
    """
    flat = depth.reshape(depth.shape[0], -1).float()
    lo = torch.quantile(flat, trim, dim=1, keepdim=True)
    hi = torch.quantile(flat, 1 - trim, dim=1, keepdim=True)
    keep = (flat >= lo) & (flat <= hi)
    count = keep.sum(1, keepdim=True).clamp_min(1)
    mean = (flat * keep).sum(1, keepdim=True) / count
    var = (((flat - mean) * keep) ** 2).sum(1, keepdim=True) / count
    return ((flat - mean) / torch.sqrt(var + eps)).reshape(depth.shape)


@dataclass
class Preprocessor:
    """Natural form <-> model form for one tokenizer; built from the config's ``preprocess`` dict."""

    input: str = "image"
    mean: Sequence[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: Sequence[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    size: int | None = None  # when set, natural inputs are resized to size x size
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.input not in _KINDS:
            raise ConfigError(f"preprocess input must be one of {_KINDS}, got {self.input!r}")
        if self.interpolation not in _MODES:
            raise ConfigError(f"preprocess interpolation must be one of {_MODES}, got {self.interpolation!r}")
        if self.input == "class_map" and self.interpolation != "nearest":
            raise ConfigError("class maps must be resized with interpolation='nearest' (other modes invent classes)")

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> "Preprocessor":
        known = {"input", "mean", "std", "size", "interpolation"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown preprocess keys {unknown}; valid: {sorted(known)}")
        return cls(**cfg)

    # -- natural -> model ---------------------------------------------------------------------
    def to_model(self, x: Any) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            if self.input != "class_map" and not x.is_floating_point():
                raise DataError(
                    f"got an integer {x.dtype} tensor for a {self.input} tokenizer: tensors must already be normalised "
                    "floats (model form); pass uint8 data as a NumPy array or PIL image to have it converted"
                )
            return x
        arr = _as_array(x)
        if self.input == "image":
            if arr.ndim == 2 or (arr.ndim == 3 and len(self.mean) == 1 and arr.shape[-1] != 1):
                arr = arr[..., None]  # one channel: (H, W) or a batch (B, H, W) of grey maps (edges, masks)
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4:
                raise DataError(f"an image must be (H, W), (H, W, C) or (B, H, W, C), got shape {arr.shape}")
            t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
            t = t.float() / 255.0 if arr.dtype == np.uint8 else t.float()  # bool masks -> 0 / 1
            t = self._resize(t)
            mean = torch.tensor(self.mean, dtype=t.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=t.dtype).view(1, -1, 1, 1)
            if mean.shape[1] != t.shape[1]:
                raise DataError(f"image has {t.shape[1]} channels but preprocess mean/std have {mean.shape[1]}")
            return (t - mean) / std
        if self.input == "class_map":
            if not np.issubdtype(arr.dtype, np.integer):
                raise DataError(f"a class map must hold integer class ids, got dtype {arr.dtype}")
            t = torch.from_numpy(arr.astype(np.int64))
            t = t[None] if t.ndim == 2 else t
            return self._resize(t[:, None].float()).round().long()[:, 0]
        if self.input == "depth":
            t = torch.from_numpy(arr.astype(np.float32))
            t = t[None] if t.ndim == 2 else t
            if t.ndim != 3:
                raise DataError(f"a depth map must be (H, W) or (B, H, W) in metres, got shape {tuple(t.shape)}")
            return robust_standardize(self._resize(t[:, None]))
        if self.input == "features":
            if not np.issubdtype(arr.dtype, np.floating):  # pixels of an image file: no feature map, whatever the shape
                raise DataError(f"this tokenizer takes float feature maps (C, H, W) in its model's form, not image "
                                f"pixels (got a {arr.dtype} {tuple(arr.shape)} array, as an image file reads); give "
                                "it its input as a .npy array (the world model's: "
                                "open4m.data.synthetic.world.to_model_form)")
            t = torch.from_numpy(arr.astype(np.float32))
            return self._resize(t[None] if t.ndim == 3 else t)
        t = torch.from_numpy(arr.astype(np.float32))  # vector
        t = t[None] if t.ndim == 1 else t
        if t.ndim != 2:
            raise DataError(f"a vector input must be (C,) or (B, C), got shape {tuple(t.shape)}")
        return t[:, :, None, None]

    def _resize(self, t: torch.Tensor) -> torch.Tensor:
        if self.size is None or t.shape[-2:] == (self.size, self.size):
            return t
        kw = {} if self.interpolation == "nearest" else {"align_corners": False, "antialias": True}
        return F.interpolate(t, size=(self.size, self.size), mode=self.interpolation, **kw)

    # -- model -> natural ---------------------------------------------------------------------
    def to_numpy(self, y: torch.Tensor) -> np.ndarray:
        """Decoder output -> natural form: uint8 (B, H, W, C) images, int64 class maps, float others."""
        y = y.detach().float().cpu()
        if self.input == "image":
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std).view(1, -1, 1, 1)
            img = (y * std + mean).clamp(0, 1)
            return (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if self.input == "class_map":
            return y.argmax(1).numpy()
        if self.input == "depth":
            return y[:, 0].numpy()
        if self.input == "vector":
            return y.reshape(y.shape[0], -1).numpy()
        return y.numpy()

    def to_pil(self, y: torch.Tensor) -> list:
        """Decoder output -> a list of PIL images (class maps as 8-bit id images)."""
        from PIL import Image

        arr = self.to_numpy(y)
        if self.input == "image":
            return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]
        if self.input == "class_map":
            return [Image.fromarray(a.clip(0, 255).astype(np.uint8)) for a in arr]
        if self.input == "depth":
            return [Image.fromarray(_stretch(a)) for a in arr]
        if self.input == "features" and arr.shape[1] in (1, 3):  # 1- or 3-channel maps (depth, normals) as seen
            return [Image.fromarray(_stretch(a[0] if len(a) == 1 else a.transpose(1, 2, 0))) for a in arr]
        raise DataError(f"{self.input} outputs with {arr.shape[1] if arr.ndim == 4 else '?'} channels are not "
                        "images; use to_numpy()")


def _stretch(a: np.ndarray) -> np.ndarray:
    """A float map stretched to the full uint8 range (per image, so each one shows its own contrast)."""
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / max(hi - lo, 1e-8) * 255).round().astype(np.uint8)


def _as_array(x: Any) -> np.ndarray:
    """A writable array of ``x``: `torch.from_numpy` warns (once, in the user's face) on a read-only one, such as
    ``np.asarray(pil_image)``."""
    try:
        from PIL import Image

        if isinstance(x, Image.Image):
            return np.array(x)
        if isinstance(x, (list, tuple)) and x and isinstance(x[0], Image.Image):
            return np.stack([np.asarray(im) for im in x])
    except ImportError:  # Pillow is optional for tensor/NumPy users
        pass
    if isinstance(x, np.ndarray):
        return x if x.flags.writeable else x.copy()
    raise DataError(f"cannot tokenize a {type(x).__name__}: pass a torch.Tensor, a NumPy array or a PIL image")
