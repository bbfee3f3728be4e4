"""Real photos that ship inside Python packages: the example "own photos" of docs/own-data.md.

Nothing is downloaded: scikit-image bundles a dozen public-domain / CC0 photos (its `skimage.data`
functions; the first line of each docstring is a human-written caption), scikit-learn two CC-BY 2.0
photos (`load_sample_image`) and matplotlib a public-domain portrait of Grace Hopper. They stand in
for a user's folder of JPEGs: mixed sizes and aspect ratios, colour and grey, people, text, objects.

`sample_photos(out)` writes them as an aligned folder dataset, ``out/<split>/rgb/<name>.jpg`` plus
``out/<split>/caption/<name>.txt``, split into `train` and a held-out `val`, so every later step of
the tutorial (labels, tokens, fine-tuning, eval) reads a folder exactly as a user would have one.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import write_atomic, write_text_atomic
from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Long side of the written photos: the packages' largest (retina, 1411 px) would only slow the labelers.
MAX_SIDE = 640


@dataclass(frozen=True)
class Photo:
    """One bundled photo: where it comes from, its caption and the split it belongs to."""

    name: str
    package: str  # skimage, sklearn or matplotlib
    ref: str  # skimage.data function, sklearn image name or matplotlib sample file
    split: str
    caption: str | None = None  # None: the skimage docstring's first line


# Grey photos (camera, page, text, coins, clock, moon) stay grey: user folders hold them too.
PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "skimage", "astronaut", "train"),
    Photo("chelsea", "skimage", "chelsea", "train"),
    Photo("coffee", "skimage", "coffee", "train"),
    Photo("rocket", "skimage", "rocket", "train"),
    Photo("camera", "skimage", "camera", "train", "A man with a camera on a tripod in a park."),
    Photo("hubble", "skimage", "hubble_deep_field", "train"),
    Photo("ihc", "skimage", "immunohistochemistry", "train"),
    Photo("retina", "skimage", "retina", "train"),
    Photo("page", "skimage", "page", "train"),
    Photo("text", "skimage", "text", "train", "Printed text and shapes on a grey background."),
    Photo("moon", "skimage", "moon", "train"),
    Photo("china", "sklearn", "china.jpg", "train", "A Chinese temple roof among green trees."),
    Photo("coins", "skimage", "coins", "val"),
    Photo("clock", "skimage", "clock", "val"),
    Photo("flower", "sklearn", "flower.jpg", "val", "A pink flower with a yellow centre."),
    Photo("grace_hopper", "matplotlib", "grace_hopper.jpg", "val", "Portrait of Grace Hopper in uniform."),
)


def _skimage(ref: str) -> tuple[np.ndarray, str]:
    import skimage.data

    fn: Callable[[], np.ndarray] = getattr(skimage.data, ref)
    return fn(), (fn.__doc__ or "").strip().splitlines()[0]


def _sklearn(ref: str) -> tuple[np.ndarray, str]:
    from sklearn.datasets import load_sample_image

    return load_sample_image(ref), ""


def _matplotlib(ref: str) -> tuple[np.ndarray, str]:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data(ref) as f:
        return np.asarray(Image.open(f).convert("RGB")), ""


_LOADERS = {"skimage": ("scikit-image", _skimage), "sklearn": ("scikit-learn", _sklearn),
            "matplotlib": ("matplotlib", _matplotlib)}


def load_photo(photo: Photo) -> tuple[np.ndarray, str]:
    """(uint8 (H, W, 3) or (H, W) array, caption) of a bundled photo."""
    dist, load = _LOADERS[photo.package]
    try:
        array, doc_caption = load(photo.ref)
    except ImportError as err:
        raise ConfigError(f"the example photos need {dist}: pip install 'open4m[labelers]'") from err
    return np.asarray(array, np.uint8), photo.caption or doc_caption


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    im = Image.fromarray(array)
    scale = MAX_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def sample_photos(out: str | Path, *, overwrite: bool = False) -> dict[str, int]:
    """Write the bundled photos and captions to ``out/{train,val}/{rgb,caption}/``; photos per split.

    An `out` that already holds files is refused unless `overwrite` (then only these files are replaced).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for the photos")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds files; choose an empty folder or pass --overwrite")
    counts: dict[str, int] = {}
    for photo in PHOTOS:
        array, caption = load_photo(photo)
        root = out / photo.split
        (root / "rgb").mkdir(parents=True, exist_ok=True)
        (root / "caption").mkdir(parents=True, exist_ok=True)
        write_atomic(root / "rgb" / f"{photo.name}.jpg", _jpeg(array))
        write_text_atomic(root / "caption" / f"{photo.name}.txt", caption + "\n")
        counts[photo.split] = counts.get(photo.split, 0) + 1
    logger.debug("wrote %s photos to %s", counts, out)
    return counts
