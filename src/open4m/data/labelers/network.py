"""Adapters that run a network the user has locally (a `transformers` model folder) as a labeler.

Nothing is downloaded: models load with ``local_files_only=True``. Pre-processing (resize,
mean/std from the folder's ``preprocessor_config.json`` when present) is done here with OpenCV
and torch, so no image-processor extras are needed. Install with ``pip install 'open4m[labelers]'``.
Provenance (``labels.json``) records the model folder and the sha256 of its weights files.
"""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..transforms import IMAGENET_MEAN, IMAGENET_STD
from .base import Labeler, file_sha256, require, rgb_uint8
from ...errors import ConfigError, DataError, NotFound

_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


def folder_model_info(path: str | Path, model: Any = None) -> dict[str, Any]:
    """A local model folder for provenance: its path, the model's name or type, sha256 of each weights file."""
    folder = Path(path)
    weights = sorted({w for pattern in _WEIGHT_PATTERNS for w in folder.glob(pattern)})
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) or getattr(config, "model_type", None) or folder.name
    return {"name": str(name), "path": str(folder), "weights": {w.name: file_sha256(w) for w in weights}}


def _config_image_size(config: Any) -> int | None:
    """The input resolution a model was built for, also inside encoder / vision sub-configs."""
    for cfg in (config, getattr(config, "encoder", None), getattr(config, "vision_config", None)):
        size = getattr(cfg, "image_size", None)
        if size:
            return size
    return None


class NetworkLabeler(Labeler):
    """Batches rgb images through `model` and turns each output into one label.

    `model_path` (set by :func:`from_pretrained`) is the folder the model came from, for provenance.
    """

    requires = ("rgb",)
    packages = ("transformers", "torch")
    model_path: str | None = None

    def __init__(self, model: torch.nn.Module, name: str | None = None, input_size: int | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 device: str | torch.device = "cpu") -> None:
        size = input_size or _config_image_size(model.config) or 224
        if isinstance(size, (list, tuple)):
            size = size[0]
        self.model, self.input_size, self.device = model.eval().to(device), int(size), torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        if name:
            self.name = name

    def model_info(self) -> dict[str, Any]:
        if self.model_path:
            return folder_model_info(self.model_path, self.model)
        config = getattr(self.model, "config", None)
        return {"name": str(getattr(config, "name_or_path", "") or type(self.model).__name__), "path": None}

    def pixels(self, samples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """(B, 3, S, S) normalised model input from the samples' uint8 rgb."""
        import cv2

        ims = [cv2.resize(rgb_uint8(s["rgb"], self.name), (self.input_size, self.input_size),
                          interpolation=cv2.INTER_AREA) for s in samples]
        x = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float() / 255
        return ((x - self.mean) / self.std).to(self.device)

    def __call__(self, sample: Mapping[str, Any]) -> Any:
        return self.batch([sample])[0]

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[Any]:
        for s in samples:
            self.check(s)
        with torch.inference_mode():
            return self.postprocess(self.forward(self.pixels(samples)), samples)

    def forward(self, pixel_values: torch.Tensor) -> Any:
        """The model's output for a batch; generative labelers override this."""
        return self.model(pixel_values=pixel_values)

    @abstractmethod
    def postprocess(self, output: Any, samples: Sequence[Mapping[str, Any]]) -> list[Any]:
        """One label per sample from the batched model output."""


def _to_image_size(maps: torch.Tensor, sample: Mapping[str, Any], mode: str) -> torch.Tensor:
    h, w = sample["rgb"].shape[:2]
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(maps[None], size=(h, w), mode=mode, **kw)[0]


class DepthLabeler(NetworkLabeler):
    """Monocular depth (any depth-estimation model) at the image's resolution, as float32 .npy.

    Stored as .npy because such models predict relative depth, whose scale a 16-bit millimetre PNG
    would clip or quantise away.
    """

    name, ext = "depth", ".npy"

    def postprocess(self, output: Any, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        pred = output.predicted_depth.float().cpu()
        return [_to_image_size(p[None], s, "bilinear")[0].clamp_min(0).numpy() for p, s in zip(pred, samples)]


class SemsegLabeler(NetworkLabeler):
    """Semantic segmentation: logits upsampled to the image, argmax, uint8 class map."""

    name, ext = "semseg", ".png"

    def postprocess(self, output: Any, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        logits = output.logits.float().cpu()
        if logits.shape[1] > 256:
            raise DataError(f"{logits.shape[1]} classes do not fit an 8-bit class map (max 256)")
        return [_to_image_size(lg, s, "bilinear").argmax(0).to(torch.uint8).numpy() for lg, s in zip(logits, samples)]


def _patch_tokens(hidden: torch.Tensor, input_size: int, patch: int) -> torch.Tensor:
    """(B, N, D) transformer states -> (B, D, h, w) patch grid, dropping CLS/register tokens."""
    side = input_size // patch
    extra = hidden.shape[1] - side * side
    if extra < 0:
        raise DataError(f"model returned {hidden.shape[1]} tokens, fewer than the {side}x{side} patch grid")
    return hidden[:, extra:].transpose(1, 2).reshape(hidden.shape[0], hidden.shape[2], side, side)


class FeatureMapLabeler(NetworkLabeler):
    """Patch-token feature maps of a ViT-style model (CLIP, DINOv2, ...): (D, h, w) float16 .npy.

    These are what the feature tokenizers (tok_clip, tok_dinov2, ...) are trained to quantise.
    """

    name, ext = "feature_map", ".npy"

    def postprocess(self, output: Any, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        patch = self.model.config.patch_size
        fm = _patch_tokens(output.last_hidden_state.float().cpu(), self.input_size, patch)
        return [f.numpy().astype(np.float16) for f in fm]


class GlobalEmbeddingLabeler(NetworkLabeler):
    """One global embedding per image (the pooled output, else the CLS token): (D,) float32 .npy."""

    name, ext = "embedding", ".npy"

    def postprocess(self, output: Any, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        pooled = getattr(output, "pooler_output", None)
        emb = pooled if pooled is not None else output.last_hidden_state[:, 0]
        return [e.float().cpu().numpy() for e in emb]


class CaptionLabeler(NetworkLabeler):
    """Captions from a local image-to-text model (greedy decoding), as .txt.

    `tokenizer` turns generated ids back into text; special tokens are dropped and whitespace
    collapsed.
    """

    name, ext = "caption", ".txt"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, max_new_tokens: int = 40, **kw: Any) -> None:
        super().__init__(model, **kw)
        self.tokenizer, self.max_new_tokens = tokenizer, max_new_tokens

    def forward(self, pixel_values: torch.Tensor) -> Any:
        return self.model.generate(pixel_values=pixel_values, max_new_tokens=self.max_new_tokens, do_sample=False)

    def postprocess(self, output: Any, samples: Sequence[Mapping[str, Any]]) -> list[str]:
        return [" ".join(t.split()) for t in self.tokenizer.batch_decode(output, skip_special_tokens=True)]


def normals_from_depth(depth: np.ndarray, fov_deg: float) -> np.ndarray:
    """Camera-frame unit normals (x right, y down, z forward) of a pinhole depth map.

    Back-projects every pixel with the horizontal field of view `fov_deg`, takes central
    differences along both image axes and crosses them; normals point towards the camera. Pixels
    without depth (0) get zero normals.
    """
    h, w = depth.shape
    tan_half = math.tan(math.radians(fov_deg) / 2)
    u = ((np.arange(w) + 0.5) / w * 2 - 1) * tan_half
    v = ((np.arange(h) + 0.5) / h * 2 - 1) * tan_half * h / w
    uu, vv = np.meshgrid(u, v)
    pts = np.stack([uu * depth, vv * depth, depth], -1).astype(np.float64)
    du = np.gradient(pts, axis=1)
    dv = np.gradient(pts, axis=0)
    n = np.cross(du, dv)
    n *= -np.sign((n * pts).sum(-1, keepdims=True) + 1e-12)  # face the camera
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    n[depth <= 0] = 0
    return n.astype(np.float32)


class NormalLabeler(Labeler):
    """Surface normals from a depth modality (ground truth, or a depth network's output).

    No offline normal-estimation network exists here, so normals come from depth geometry; pass a
    :class:`DepthLabeler` as `depth` to go from rgb through a depth network.
    """

    name, ext = "normal", ".png"

    def __init__(self, fov_deg: float = 60.0, depth: DepthLabeler | None = None, source: str = "depth") -> None:
        self.fov_deg, self.depth, self.source = fov_deg, depth, source
        self.requires = ("rgb",) if depth else (source,)
        self.packages = depth.packages if depth else ()

    def model_info(self) -> dict[str, Any] | None:
        return self.depth.model_info() if self.depth else None

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        return self.batch([sample])[0]

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        for s in samples:
            self.check(s)
        depths = self.depth.batch(samples) if self.depth else [s[self.source] for s in samples]
        return [normals_from_depth(np.asarray(d, np.float64), self.fov_deg) for d in depths]


_LOADERS = {
    "depth": ("AutoModelForDepthEstimation", DepthLabeler),
    "semseg": ("AutoModelForSemanticSegmentation", SemsegLabeler),
    "feature_map": ("AutoModel", FeatureMapLabeler),
    "embedding": ("AutoModel", GlobalEmbeddingLabeler),
    "normal": ("AutoModelForDepthEstimation", DepthLabeler),
    "caption": ("AutoModelForImageTextToText", CaptionLabeler),
}


def from_pretrained(kind: str, path: str | Path, name: str | None = None, device: str = "cpu") -> Labeler:
    """A network labeler of `kind` (depth, normal, semseg, feature_map, embedding, caption) from a local model folder."""
    if kind not in _LOADERS:
        raise ConfigError(f"unknown network labeler {kind!r}; choose from {sorted(_LOADERS)}")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise NotFound(f"{path} is not a local transformers model folder (no config.json)")
    require("transformers", kind)
    import transformers

    auto_name, cls = _LOADERS[kind]
    model = getattr(transformers, auto_name).from_pretrained(str(path), local_files_only=True)
    stats: dict[str, Any] = {}
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        cfg = json.loads(pre.read_text())
        stats = {k: cfg[f"image_{k}"] for k in ("mean", "std") if f"image_{k}" in cfg}
    if kind == "caption":
        stats["tokenizer"] = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    labeler = cls(model, name=None if kind == "normal" else name, device=device, **stats)
    labeler.model_path = str(path)
    return NormalLabeler(depth=labeler) if kind == "normal" else labeler
