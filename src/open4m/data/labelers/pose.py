"""MediaPipe body pose: 33 keypoints per person (`keypoints`) and a soft person mask (`person_mask`).

Both labelers run MediaPipe's legacy ``mp.solutions.pose`` (mediapipe 0.10.14) with
``model_complexity=1``, whose two TFLite models ship inside the wheel
(``modules/pose_detection/pose_detection.tflite``, ``modules/pose_landmark/pose_landmark_full.tflite``):
complexities 0 and 2 would be downloaded from Google's storage on first use, 1 never is, so labelling
works offline (:func:`bundled_models` checks the files before anything runs).

- **Several persons.** The legacy graph returns one person per image. To find more, the person found
  is painted out (its segmentation region, dilated, set to grey) and the image is run again, up to
  `max_persons` times; a detection lying mostly inside what was painted out ends the search. On real
  photos this finds both people of two portraits side by side and nobody extra in a single portrait
  (tests/data/labelers/test_pose.py).
- **The mask** is the pose graph's segmentation output, one per person, combined by maximum; an image
  with nobody gets an all-zero mask. MediaPipe's separate selfie-segmentation model is not used: it
  is not gated by a person detection and marks 91% of skimage's cat photo (``chelsea``) as person.
- **The box** of a person is the extent of its mask (at `mask_threshold`) together with its visible
  keypoints (visibility >= 0.5): the visible person, like a detector's box, whereas the keypoints'
  own extent includes limbs MediaPipe extrapolates beyond the frame.
- **Label format** (``keypoints/<key>.json``): a list, largest box first, of ``{"box": [x0, y0, x1, y1],
  "keypoints": [[x, y, visibility] * 33]}``, everything normalised to [0, 1] (x right, y down;
  keypoints beyond the frame are clipped to it and usually have low visibility), in MediaPipe's
  landmark order (:data:`open4m.tokenizers.sequences.BODY_KEYPOINT_NAMES`). ``[]`` when nobody is
  there. :class:`~open4m.tokenizers.sequences.KeypointsCodec` turns it into tokens.

MediaPipe runs one image at a time on the CPU (its Python graph has no GPU path), so `batch` loops.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .base import Labeler, file_sha256, package_versions, require, rgb_uint8
from ...errors import ConfigError, NotFound

logger = logging.getLogger(__name__)

#: The models of ``model_complexity=1`` inside the mediapipe package, relative to its folder.
MODEL_FILES: tuple[str, ...] = ("modules/pose_detection/pose_detection.tflite",
                                "modules/pose_landmark/pose_landmark_full.tflite")
MODEL_NAME = "MediaPipe Pose (BlazePose GHUM 3D, full: model_complexity=1)"
#: Grey that paints a found person out before the next search (mid-range, no edges of its own).
_ERASE_VALUE = 127
#: Visibility from which a keypoint counts as seen (MediaPipe's own drawing threshold).
VISIBLE = 0.5


def bundled_models(labeler: str) -> tuple[Path, dict[str, Path]]:
    """(mediapipe package folder, model name -> file) of the bundled pose models, located without importing.

    Raises a one-line error naming the install command when mediapipe is missing, and when a model
    file is absent (MediaPipe would try to download it instead).
    """
    spec = require("mediapipe", labeler)
    for folder in spec.submodule_search_locations or ():
        files = {Path(f).name: Path(folder) / f for f in MODEL_FILES}
        if all(p.is_file() for p in files.values()):
            return Path(folder), files
    raise NotFound(f"mediapipe is installed but lacks {', '.join(MODEL_FILES)} (the {labeler} labeler never "
                   "downloads models); reinstall it: pip install --force-reinstall --no-deps mediapipe==0.10.14")


def _protobuf_compat() -> None:
    """Give newer protobuf back the three names mediapipe 0.10.14 uses.

    - ``SymbolDatabase.GetPrototype`` / ``MessageFactory.GetPrototype``: mediapipe reads result packets
      with the first and its bindings look the second up on import; protobuf 6 removed both for
      ``message_factory.GetMessageClass``, which does the same.
    - ``FieldDescriptor.label``: mediapipe reads it to tell repeated options from single ones while
      building its graph; protobuf 7 removed it for ``is_repeated`` / ``is_required``.

    tensorboard >= 2.20 needs protobuf >= 6, so an environment with both needs the old names; each is
    added only where it is missing (older protobuf keeps its own).
    """
    from google.protobuf import descriptor, descriptor_pb2, message_factory, symbol_database

    def get_prototype(self: Any, message_descriptor: Any) -> Any:
        return message_factory.GetMessageClass(message_descriptor)

    for cls in (symbol_database.SymbolDatabase, message_factory.MessageFactory):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = get_prototype

    def label(field: Any) -> int:
        if field.is_repeated:
            return descriptor.FieldDescriptor.LABEL_REPEATED
        if field.is_required:
            return descriptor.FieldDescriptor.LABEL_REQUIRED
        return descriptor.FieldDescriptor.LABEL_OPTIONAL

    # The class of the descriptors protobuf hands out (its C implementation's, not the Python facade).
    field_class = type(descriptor_pb2.FileDescriptorProto.DESCRIPTOR.fields[0])
    if not hasattr(field_class, "label"):
        field_class.label = property(label)


@dataclass(frozen=True)
class Person:
    """One detected person: (33, 3) landmarks (x, y normalised, may lie outside [0, 1]; visibility) and
    its (H, W) float32 segmentation in [0, 1]."""

    landmarks: np.ndarray
    mask: np.ndarray

    def box(self, threshold: float) -> list[float]:
        """Normalised [x0, y0, x1, y1] of the mask region and the visible keypoints, clipped to the frame."""
        h, w = self.mask.shape
        xs: list[float] = []
        ys: list[float] = []
        rows, cols = np.nonzero(self.mask >= threshold)
        if rows.size:
            xs += [cols.min() / w, (cols.max() + 1) / w]
            ys += [rows.min() / h, (rows.max() + 1) / h]
        seen = self.landmarks[self.landmarks[:, 2] >= VISIBLE]
        if not seen.size and not rows.size:  # nothing certain: every predicted keypoint
            seen = self.landmarks
        xs += seen[:, 0].tolist()
        ys += seen[:, 1].tolist()
        clip = lambda v: float(min(max(v, 0.0), 1.0))  # noqa: E731
        return [clip(min(xs)), clip(min(ys)), clip(max(xs)), clip(max(ys))]

    def label(self, threshold: float) -> dict[str, Any]:
        """This person as the ``keypoints`` label JSON (4 decimals: 1/10 of a quantisation bin)."""
        xy = np.clip(self.landmarks[:, :2], 0.0, 1.0)
        vis = np.clip(self.landmarks[:, 2], 0.0, 1.0)
        return {"box": [round(v, 4) for v in self.box(threshold)],
                "keypoints": [[round(float(x), 4), round(float(y), 4), round(float(v), 3)]
                              for (x, y), v in zip(xy, vis)]}


class _MediaPipePose(Labeler):
    """Shared by both labelers: the bundled pose graph, found persons, model record.

    `max_persons` bounds the search per image; `min_detection_confidence` is MediaPipe's detector
    threshold; `mask_threshold` is where the soft segmentation counts as the person (box, painting out).
    `device` exists for the CLI's ``--device``: anything but the CPU is reported and ignored.
    """

    requires = ("rgb",)
    packages = ("mediapipe",)

    def __init__(self, max_persons: int = 4, min_detection_confidence: float = 0.5, mask_threshold: float = 0.5,
                 device: str = "cpu") -> None:
        if max_persons < 1:
            raise ConfigError(f"max_persons must be at least 1, got {max_persons}")
        for what, v in (("min_detection_confidence", min_detection_confidence), ("mask_threshold", mask_threshold)):
            if not 0.0 < v < 1.0:
                raise ConfigError(f"{what} must lie strictly between 0 and 1, got {v}")
        self._folder, self._files = bundled_models(self.name)
        if str(device) != "cpu":
            logger.warning("%s runs on the CPU (MediaPipe's Python pose has no GPU path); device %s is ignored",
                           self.name, device)
        self.model_complexity = 1
        self.max_persons, self.mask_threshold = int(max_persons), float(mask_threshold)
        self.min_detection_confidence = float(min_detection_confidence)
        self._pose: Any = None

    def _graph(self) -> Any:
        """MediaPipe's pose solution in still-image mode with segmentation, built on first use."""
        if self._pose is None:
            _protobuf_compat()
            import mediapipe as mp

            with warnings.catch_warnings():  # protobuf 6 deprecates a call mediapipe makes while building
                warnings.filterwarnings("ignore", message=r"label\(\) is deprecated", category=DeprecationWarning)
                self._pose = mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=self.model_complexity, enable_segmentation=True,
                    min_detection_confidence=self.min_detection_confidence)
        return self._pose

    def close(self) -> None:
        """Release MediaPipe's graph (it is rebuilt if the labeler runs again)."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": MODEL_NAME, "path": str(self._folder),
                                "weights": {name: file_sha256(p) for name, p in self._files.items()}}
        package = package_versions(("mediapipe",))
        if package:
            info["package"] = f"mediapipe=={package['mediapipe']}"
        return info

    def _process(self, image: np.ndarray) -> Any:
        with warnings.catch_warnings():  # protobuf's deprecation notice, raised inside mediapipe on every call
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)
            return self._graph().process(image)

    def persons(self, rgb: Any) -> list[Person]:
        """Everyone MediaPipe finds in one image, painting out each person found before looking again."""
        import cv2

        image = rgb_uint8(rgb, self.name)
        h, w = image.shape[:2]
        grow = max(3, round(0.02 * min(h, w)) | 1)  # odd dilation kernel: ~2% of the short side
        kernel = np.ones((grow, grow), np.uint8)
        work, erased, found = image, np.zeros((h, w), bool), []
        while len(found) < self.max_persons:
            result = self._process(work)
            if result.pose_landmarks is None:
                break
            landmarks = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], np.float32)
            mask = result.segmentation_mask
            mask = np.zeros((h, w), np.float32) if mask is None else np.clip(np.asarray(mask, np.float32), 0, 1)
            region = mask >= self.mask_threshold
            if found and (not region.any() or (region & erased).sum() > 0.5 * region.sum()):
                break  # the same person again (or a ghost of the grey patch)
            found.append(Person(landmarks, mask))
            cover = cv2.dilate(region.astype(np.uint8), kernel) > 0
            if not cover.any() or len(found) == self.max_persons:
                break  # nothing to paint out: another pass would find the same person
            erased |= cover
            work = work.copy() if work is image else work
            work[cover] = _ERASE_VALUE
        return found

    def __call__(self, sample: Mapping[str, Any]) -> Any:
        return self.batch([sample])[0]


class PoseKeypoints(_MediaPipePose):
    """Per person a box and 33 keypoints with visibility, as JSON (see the module docstring for the format)."""

    name, ext = "keypoints", ".json"

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        out = []
        for s in samples:
            self.check(s)
            people = [p.label(self.mask_threshold) for p in self.persons(s["rgb"])]
            people.sort(key=lambda p: -(p["box"][2] - p["box"][0]) * (p["box"][3] - p["box"][1]))
            out.append(people)
        return out


class PersonMask(_MediaPipePose):
    """Where people are: a float32 (H, W) map in [0, 1] at the image's resolution, stored as an 8-bit PNG."""

    name, ext = "person_mask", ".png"

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
        out = []
        for s in samples:
            self.check(s)
            h, w = np.asarray(s["rgb"]).shape[:2]
            mask = np.zeros((h, w), np.float32)
            for p in self.persons(s["rgb"]):
                np.maximum(mask, p.mask, out=mask)
            out.append(mask)
        return out
