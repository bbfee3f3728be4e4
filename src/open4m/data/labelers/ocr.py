"""Text in photos: RapidOCR (PP-OCRv4 detection + recognition, ONNX) as ``det``-style boxes whose class is the text.

The package `rapidocr-onnxruntime==1.4.4` ships its three ONNX models in ``rapidocr_onnxruntime/models``
(:data:`MODEL_FILES`: the PP-OCRv4 text detector, the PP-OCR mobile v2 angle classifier, the PP-OCRv4
recogniser, whose dictionary covers Chinese and Latin text); the labeler passes their paths
explicitly, so what the provenance record hashes is what runs, and nothing is fetched. RapidOCR takes
BGR arrays; the labeler converts.

Label format (``ocr/<key>.json``): a list, in RapidOCR's reading order (top to bottom, then left to
right), of ``{"box": [x0, y0, x1, y1], "text": str, "score": float}``: the axis-aligned box around
each detected (possibly rotated) text line, normalised to [0, 1], its recognised string as read and
the recogniser's confidence. Lines under `min_score` (RapidOCR's 0.5) are not written. ``[]`` when
there is no text. :class:`~open4m.tokenizers.sequences.OcrCodec` turns it into tokens, dropping lines
under its own, higher threshold (0.7: spurious reads in textless photos score up to 0.69), so the
threshold of the tokens can change without relabelling. See docs/labelers-people-text.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .base import Labeler, file_sha256, package_versions, require, rgb_uint8
from ...errors import ConfigError, NotFound

logger = logging.getLogger(__name__)

#: RapidOCR stage -> its bundled model, inside ``rapidocr_onnxruntime/models``.
MODEL_FILES: dict[str, str] = {"det": "ch_PP-OCRv4_det_infer.onnx", "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                               "rec": "ch_PP-OCRv4_rec_infer.onnx"}
MODEL_NAME = "PP-OCRv4 (RapidOCR: det + cls + rec)"


def bundled_models(labeler: str = "ocr") -> dict[str, Path]:
    """Stage -> ONNX file of the installed rapidocr-onnxruntime, located without importing it."""
    spec = require("rapidocr_onnxruntime", labeler)
    require("onnxruntime", labeler)
    for folder in spec.submodule_search_locations or ():
        files = {stage: Path(folder) / "models" / name for stage, name in MODEL_FILES.items()}
        if all(p.is_file() for p in files.values()):
            return files
    raise NotFound(f"rapidocr-onnxruntime is installed but lacks models/{', '.join(MODEL_FILES.values())}; "
                   "reinstall it: pip install --force-reinstall --no-deps rapidocr-onnxruntime==1.4.4")


class OcrBoxes(Labeler):
    """Text lines of a photo as JSON boxes with their string and confidence (format: module docstring).

    `min_score` drops lines the recogniser is less sure of (RapidOCR's ``text_score``); `device`
    ``cuda`` runs the three models through onnxruntime's CUDA provider when that build is installed
    (else the CPU, with a warning).
    """

    name, ext = "ocr", ".json"
    requires = ("rgb",)
    packages = ("rapidocr-onnxruntime", "onnxruntime")

    def __init__(self, min_score: float = 0.5, device: str = "cpu") -> None:
        if not 0.0 <= min_score < 1.0:
            raise ConfigError(f"min_score must lie in [0, 1), got {min_score}")
        self._files = bundled_models(self.name)
        self.min_score = float(min_score)
        self._cuda = str(device).startswith("cuda")
        if self._cuda:
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                logger.warning("ocr: onnxruntime has no CUDA provider (pip install onnxruntime-gpu); running on the CPU")
                self._cuda = False
        elif str(device) != "cpu":
            logger.warning("ocr runs on the CPU or CUDA; device %s is ignored", device)
        self._engine: Any = None

    def _ocr(self) -> Any:
        """RapidOCR with the bundled models named explicitly, built on first use."""
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            paths = {f"{stage}_model_path": str(p) for stage, p in self._files.items()}
            cuda = {f"{stage}_use_cuda": self._cuda for stage in self._files}
            self._engine = RapidOCR(text_score=self.min_score, **paths, **cuda)
        return self._engine

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": MODEL_NAME, "path": str(next(iter(self._files.values())).parent),
                                "weights": {p.name: file_sha256(p) for p in self._files.values()}}
        package = package_versions(("rapidocr-onnxruntime",))
        if package:
            info["package"] = f"rapidocr-onnxruntime=={package['rapidocr-onnxruntime']}"
        return info

    def read(self, rgb: Any) -> list[dict[str, Any]]:
        """The text lines of one (H, W, 3) uint8 RGB image, in the label format."""
        image = rgb_uint8(rgb, self.name)
        h, w = image.shape[:2]
        result, _ = self._ocr()(np.ascontiguousarray(image[..., ::-1]))  # RapidOCR reads arrays as BGR
        lines = []
        for quad, text, score in result or ():
            text = str(text).strip()
            if not text or float(score) < self.min_score:
                continue
            pts = np.asarray(quad, np.float64).reshape(-1, 2)
            box = [pts[:, 0].min() / w, pts[:, 1].min() / h, pts[:, 0].max() / w, pts[:, 1].max() / h]
            lines.append({"box": [round(float(min(max(v, 0.0), 1.0)), 4) for v in box], "text": text,
                          "score": round(float(score), 4)})
        return lines

    def __call__(self, sample: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.batch([sample])[0]

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """RapidOCR reads one image at a time (it batches the text lines of an image itself)."""
        for s in samples:
            self.check(s)
        return [self.read(s["rgb"]) for s in samples]
