"""A real evaluation set that ships offline: the Middlebury 2014 motorcycle, metric depth and normals.

scikit-image bundles one rectified stereo pair with ground-truth disparity
(`skimage.data.stereo_motorcycle()`: left and right 741x500 photos, the left view's disparity; the
Middlebury 2014 benchmark's "Motorcycle" scene down-sampled 4x). Its docstring gives the calibration
of the down-sampled images: focal length f = 994.978 px, left principal point (311.193, 254.877) px,
principal-point offset doffs = 31.086 px (right minus left), baseline B = 193.001 mm. Middlebury's
definition turns disparity d into depth along the optical axis:

    Z = f * B / (d + doffs)        (mm; here 2.1 m to 5.0 m)

where d is defined. The disparity is the left view's: left pixel (x, y) shows what the right image
shows at (x - d, y) (checked photometrically; the docstring's example states the opposite direction).
The right view's disparity is derived by warping the left one (`right_disparity`): every left pixel
lands at x - d in the right image, the nearest surface (largest d) wins, and right pixels no left pixel
lands on (seen only by the right camera) have no ground truth. The right principal point is (311.193 + doffs, 254.877).

Normals come from the depth by back-projection through the camera (pinhole, square pixels):
`open4m.data.labelers.network.normals_from_depth` back-projects a depth map whose principal point is
its centre, so every crop here is centred on its view's principal point; normals are kept only where
the pixel and its four neighbours have depth and no neighbour lies across a depth edge (a relative
jump above `EDGE_JUMP`); elsewhere they are zero, which the metrics read as "no ground truth".

`write_motorcycle(out)` writes the set in the aligned folder layout `open4m eval` reads:
``out/rgb/<name>.png``, ``out/depth/<name>.png`` (16-bit millimetres, 0 = unknown),
``out/normal/<name>.png`` (packed unit normals, OpenCV camera frame: x right, y down, z forward),
``out/caption/<name>.txt`` (the docstring's first line) and ``out/motorcycle.json`` (calibration,
crops, provenance). Samples: each view x each crop (`CROPS`, width x height around the principal
point) x each down-sampling factor (`FACTORS`, 2x2 block means like the one that made the data);
all views of one scene, so they are not independent images. `open4m dataset motorcycle --out DIR`
runs it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import write_atomic, write_text_atomic
from ..errors import ConfigError

__all__ = ["StereoCalibration", "MOTORCYCLE", "CROPS", "FACTORS", "EDGE_JUMP", "right_disparity",
           "normals_with_edges", "motorcycle_samples", "write_motorcycle"]

log = logging.getLogger(__name__)

CROPS: tuple[tuple[int, int], ...] = ((600, 480), (480, 480), (320, 320))  # width x height, around the principal point
FACTORS: tuple[int, ...] = (1, 2)  # down-sampling factors (2x2 block means)
EDGE_JUMP = 0.05  # a neighbour whose depth differs by more than this fraction lies across a depth edge


@dataclass(frozen=True)
class StereoCalibration:
    """A rectified pair's calibration in pixels of the images (Middlebury 2014 conventions)."""

    focal_px: float
    cx: float  # left view's principal point
    cy: float
    doffs_px: float  # x-difference of the principal points, right minus left
    baseline_mm: float

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Metric depth (m) along the optical axis, Z = f * B / (d + doffs); 0 where d is unknown."""
        d = np.asarray(disparity, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = np.isfinite(d) & (d + self.doffs_px > 0)
            z = np.where(ok, self.focal_px * self.baseline_mm / np.where(ok, d + self.doffs_px, 1.0) / 1000.0, 0.0)
        return z.astype(np.float32)

    def principal_point(self, view: str) -> tuple[float, float]:
        return (self.cx + (self.doffs_px if view == "right" else 0.0), self.cy)


# skimage.data.stereo_motorcycle's docstring (the calibration of its 4x down-sampled images)
MOTORCYCLE = StereoCalibration(focal_px=994.978, cx=311.193, cy=254.877, doffs_px=31.086, baseline_mm=193.001)


def right_disparity(left: np.ndarray) -> np.ndarray:
    """The right view's disparity from the left view's, by forward warping along each row.

    Left pixels x and x + 1 of one surface (both known, disparities less than 1 px apart) map to the
    right-image segment [x - d(x), x + 1 - d(x + 1)]; every integer right pixel inside it gets the
    linearly interpolated disparity. Where several surfaces land, the nearest (largest d) wins; right
    pixels no segment covers (seen only by the right camera, or at depth edges) are NaN.
    """
    left = np.asarray(left, np.float64)
    h, w = left.shape
    d0, d1 = left[:, :-1], left[:, 1:]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(d0) & np.isfinite(d1) & (np.abs(d1 - d0) < 1)
    d0, d1 = np.where(ok, d0, 0.0), np.where(ok, d1, 0.0)
    x = np.arange(w - 1, dtype=np.float64)[None]
    start, length = x - d0, 1.0 - (d1 - d0)  # length > 0 on a surface: the segment is under 2 px long
    rows = np.broadcast_to(np.arange(h)[:, None], d0.shape)
    flat = np.full(h * w, -np.inf)
    for offset in (0, 1):  # the (at most two) integer pixels of each segment
        xr = np.ceil(start) + offset
        t = (xr - start) / length
        hit = ok & (t >= 0) & (t <= 1) & (xr >= 0) & (xr < w)
        value = d0 + t * (d1 - d0)
        np.maximum.at(flat, rows[hit] * w + xr[hit].astype(np.int64), value[hit])
    return np.where(np.isfinite(flat), flat, np.nan).reshape(h, w)


def normals_with_edges(depth: np.ndarray, fov_deg: float, edge_jump: float = EDGE_JUMP) -> np.ndarray:
    """Camera-frame unit normals of a depth map centred on its principal point (horizontal field of view
    `fov_deg`), zero where the pixel or a 4-neighbour lacks depth or a neighbour lies across a depth edge."""
    from ..data.labelers.network import normals_from_depth

    depth = np.asarray(depth, np.float64)
    normals = normals_from_depth(depth, fov_deg)
    ok = depth > 0
    padded = np.pad(depth, 1, mode="constant")
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        nb = padded[dy:dy + depth.shape[0], dx:dx + depth.shape[1]]
        ok &= (nb > 0) & (np.abs(nb - depth) <= edge_jump * np.maximum(depth, 1e-9))
    normals[~ok] = 0
    return normals


def _crop(arr: np.ndarray, centre: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    w, h = size
    # pixel i's centre is at index i; a crop's centre at x0 + (w - 1) / 2, closest to the principal point
    x0, y0 = int(round(centre[0] - (w - 1) / 2)), int(round(centre[1] - (h - 1) / 2))
    if x0 < 0 or y0 < 0 or x0 + w > arr.shape[1] or y0 + h > arr.shape[0]:
        raise ConfigError(f"a {w}x{h} crop around the principal point ({centre[0]:.1f}, {centre[1]:.1f}) leaves the "
                          f"{arr.shape[1]}x{arr.shape[0]} image; choose a smaller crop")
    return arr[y0:y0 + h, x0:x0 + w]


def _blocks(arr: np.ndarray, k: int) -> np.ndarray:
    """(H, W, ...) -> (H/k, W/k, k*k, ...): the k x k blocks of a map."""
    h, w = arr.shape[0] // k * k, arr.shape[1] // k * k
    a = arr[:h, :w].reshape(h // k, k, w // k, k, *arr.shape[2:])
    return np.moveaxis(a, 2, 1).reshape(h // k, w // k, k * k, *arr.shape[2:])


def _downsample(rgb: np.ndarray, depth: np.ndarray, normal: np.ndarray, k: int):
    """k x k block means; a block keeps depth (normals) only where all its pixels have them and its depth
    spans less than EDGE_JUMP (no mixing of two surfaces)."""
    if k == 1:
        return rgb, depth, normal
    rgb = np.round(_blocks(rgb.astype(np.float64), k).mean(2)).astype(np.uint8)
    d = _blocks(depth.astype(np.float64), k)
    ok = (d > 0).all(2) & (d.max(2) - d.min(2) <= EDGE_JUMP * np.maximum(d.min(2), 1e-9))
    depth = np.where(ok, d.mean(2), 0.0).astype(np.float32)
    n = _blocks(normal.astype(np.float64), k)
    ok &= (np.linalg.norm(n, axis=-1) > 0.5).all(2)
    mean = n.mean(2)
    mean /= np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-9)
    return rgb, depth, np.where(ok[..., None], mean, 0.0).astype(np.float32)


def motorcycle_samples(views: Sequence[str] = ("left", "right"), crops: Sequence[tuple[int, int]] = CROPS,
                       factors: Sequence[int] = FACTORS) -> list[dict[str, Any]]:
    """The samples of the set (`rgb`, `depth`, `normal`, `caption`, `__key__` = the file name), in memory."""
    if importlib.util.find_spec("skimage") is None:
        raise ConfigError("the motorcycle evaluation set ships inside scikit-image, which is not installed: "
                          "pip install 'open4m[labelers]' (or just scikit-image)")
    from skimage import data

    unknown = set(views) - {"left", "right"}
    if unknown or not views:
        raise ConfigError(f"views must be left and/or right, got {list(views)}")
    if any(int(k) < 1 for k in factors) or not factors or not crops:
        raise ConfigError(f"need at least one crop and down-sampling factors >= 1, got crops {crops}, factors {factors}")
    left, right, disp = data.stereo_motorcycle()
    caption = data.stereo_motorcycle.__doc__.strip().splitlines()[0].strip()
    images = {"left": (left, disp), "right": (right, right_disparity(disp))}
    samples = []
    for view in views:
        rgb_full, disparity = images[view]
        depth_full = MOTORCYCLE.depth(disparity)
        centre = MOTORCYCLE.principal_point(view)
        for w, h in crops:
            rgb, depth = _crop(rgb_full, centre, (w, h)), _crop(depth_full, centre, (w, h))
            fov = math.degrees(2 * math.atan(w / 2 / MOTORCYCLE.focal_px))
            normal = normals_with_edges(depth, fov)
            for k in factors:
                r, d, n = _downsample(rgb, depth, normal, int(k))
                name = f"{view}_{w}x{h}_f{k}"
                samples.append({"__key__": name, "rgb": r, "depth": d, "normal": n, "caption": caption})
    return samples


def write_motorcycle(out: str | Path, *, views: Sequence[str] = ("left", "right"),
                     crops: Sequence[tuple[int, int]] = CROPS, factors: Sequence[int] = FACTORS) -> list[str]:
    """Write the motorcycle evaluation set to `out` (see the module docstring); returns the sample names."""
    from ..data.codecs import encode

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; choose a folder for the evaluation set")
    samples = motorcycle_samples(views, crops, factors)
    exts = {"rgb": ".png", "depth": ".png", "normal": ".png", "caption": ".txt"}
    for s in samples:
        for modality, ext in exts.items():
            write_atomic(out / modality / f"{s['__key__']}{ext}", encode(s[modality], ext, modality))
    info = {
        "source": "skimage.data.stereo_motorcycle (Middlebury 2014 'Motorcycle', down-sampled 4x)",
        "calibration": asdict(MOTORCYCLE), "depth": "Z = focal_px * baseline_mm / (disparity + doffs_px) / 1000 (m)",
        "views": list(views), "crops": [list(c) for c in crops], "factors": [int(k) for k in factors],
        "edge_jump": EDGE_JUMP, "samples": [s["__key__"] for s in samples],
        "valid_depth": {s["__key__"]: round(float((s["depth"] > 0).mean()), 4) for s in samples},
    }
    write_text_atomic(out / "motorcycle.json", json.dumps(info, indent=2))
    log.info("wrote %d motorcycle samples to %s", len(samples), out)
    return [s["__key__"] for s in samples]
