"""What the `open4m serve` page does, as plain functions (no Gradio here, so tests call them directly).

A `Studio` holds one loaded model (through `open4m.eval.models.EvalModel`, which loads the shipped
world model, any world model folder, a released name, a Hub id or a local bundle alike) and speaks in
*roles* a person recognises (RGB, depth, caption, boxes, ...) instead of registry names. A press of
Generate becomes a `GenerationRequest` (`open4m.generation.request`, the functions behind `open4m
generate` too) run on the model's pipeline; the outputs come back as labelled pictures (depth, normals,
segmentation and edges coloured, boxes drawn, palettes as swatches) and texts.

Every bad input (an unreadable upload, no condition, a box outside the image, a malformed colour) is
an `open4m.errors.Open4mError` with a one-line message; the page shows it and keeps serving.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.synthetic import world
from ..errors import ConfigError, DataError
from ..eval.models import EvalModel
from ..generation.pipeline import Boxes, ColorPalette, GenerationOutput, Metadata, draw_boxes
from ..data.codecs import open_image, rgb_image
from ..generation.request import build_request
from ..modalities import Kind
from ..tokenizers.sequences import Box

log = logging.getLogger(__name__)

__all__ = ["ROLES", "Scene", "Result", "Studio", "parse_boxes", "parse_palette", "parse_metadata", "parse_guidance",
           "box_from_corners", "table_rows", "to_model_size"]

# Role -> what the page calls it, in the page's order.
ROLES: dict[str, str] = {"rgb": "RGB", "depth": "depth", "normal": "normals", "semseg": "segmentation",
                         "canny_edge": "edges", "caption": "caption", "det": "boxes", "color_palette": "palette",
                         "metadata": "metadata"}
IMAGE_ROLES = tuple(r for r in ROLES if r in world.IMAGE_MODALITIES)
SEQUENCE_ROLES = tuple(world.SEQUENCE_MODALITIES)
SHOW = 256  # outputs are shown at this size (the world model's 64 px enlarged without blur)
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass
class Scene:
    """An example scene as the page's widgets show it: the photo, its annotations and its ground-truth maps."""

    index: int
    rgb: np.ndarray
    caption: str
    boxes: list[list[Any]]  # rows of [xmin, ymin, xmax, ymax, class]
    palette: list[str]  # '#rrggbb'
    metadata: list[list[Any]]  # rows of [field, value]
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # depth, normal, semseg, canny_edge arrays


@dataclass
class Result:
    """One Generate press: labelled pictures side by side, texts by role, and how long it took."""

    gallery: list[tuple[Any, str]]
    texts: dict[str, str]
    seconds: float
    spec: str

    def summary(self) -> str:
        return f"{len(self.gallery)} pictures and {len(self.texts)} texts in {self.seconds:.2f} s ({self.spec})"


class Studio:
    """One model behind the page: its roles, example scenes, and generation from the page's values."""

    def __init__(self, model: Any = None) -> None:
        self.model = EvalModel.load(model)
        self._label = "the shipped world model (open4m/assets/world64)" if model is None else str(model)
        self.size = self.model.image_size
        self.inputs = {r: n for r in ROLES if (n := self._modality(r, output=False))}
        self.outputs = {r: n for r in ROLES if (n := self._modality(r, output=True))}
        if not self.inputs or not self.outputs:
            raise ConfigError(f"{self.model.name}: none of its modalities is one the page knows ({list(ROLES)})")

    @property
    def name(self) -> str:
        """What the page calls the model: its name, path or Hub id as given."""
        return self._label

    def _modality(self, role: str, *, output: bool) -> str | None:
        if role == "rgb" and not output:
            return self.model.rgb or self.model.image_modality("rgb", output=False)
        if role in IMAGE_ROLES:
            return self.model.image_modality(role, output=output)
        return self.model.sequence_modality(role, output=output)

    # -- example scenes ------------------------------------------------------------------------------
    def example(self, index: int) -> Scene:
        """Test-split scene ``index`` (never seen in training) with its ground truth as the page's values."""
        from ..data.synthetic import generate_sample, seed_for

        s = generate_sample(seed_for("test", int(index)), self.size, caption_order=self.model.caption_order)
        boxes = [[*(round(float(c), 3) for c in inst["boxes"]), inst["class_name"]] for inst in s["det"]["instances"]]
        palette = ["#%02x%02x%02x" % tuple(int(v) for v in c) for c in world.palette_of(s)]
        metadata = [[k, round(float(s["metadata"][k]), 3)] for k in world.METADATA_KEYS]
        return Scene(int(index), s["rgb"], s["caption"], boxes, palette, metadata,
                     {b: s[b] for b in IMAGE_ROLES if b != "rgb"})

    # -- a Generate press ----------------------------------------------------------------------------
    def generate(self, conditions: Sequence[str], targets: Sequence[str], *, image: Any = None,
                 scene: Scene | None = None, caption: str = "", boxes: Sequence[Sequence[Any]] = (),
                 palette: Sequence[str] = (), metadata: Sequence[Sequence[Any]] = (), steps: int = 8,
                 image_temperature: float = 0.0, text_temperature: float = 0.0, guidance: str = "1",
                 seed: int = 0, chain: bool = False, progress: bool = False) -> Result:
        """The page's values -> generated outputs. ``conditions`` and ``targets`` are roles (`rgb`, `depth`, ...).

        ``image`` is the RGB condition (a PIL image, a uint8 array or a file path); depth, normal,
        segmentation and edge conditions come from ``scene``'s ground truth. Each target is generated from
        the conditions alone, or with ``chain`` from the conditions and every target before it (one
        `Pipeline` spec `conditions->t1->t2...`; the shipped world model was trained on RGB-to-all, so its
        targets are best generated from the conditions alone).
        """
        t0 = time.perf_counter()
        if not conditions:
            raise ConfigError("choose at least one condition (e.g. RGB or caption): the model generates from them")
        if not targets:
            raise ConfigError("choose at least one modality to generate")
        self._check_roles(conditions, self.inputs, "a condition")
        self._check_roles(targets, self.outputs, "generated")
        both = [ROLES[r] for r in conditions if r in targets]
        if both:
            raise ConfigError(f"{both} are both a condition and a target; untick one of them")
        values = {self.inputs[r]: self._value(r, image=image, scene=scene, caption=caption, boxes=boxes,
                                              palette=palette, metadata=metadata) for r in conditions}
        names = [self.outputs[r] for r in ROLES if r in targets]  # in the page's order
        image_target = {n: self.model.model.modality_info[n].kind is Kind.IMAGE_TOKENS for n in names}
        cfg = parse_guidance(guidance, self.inputs)
        steps, seed = _whole(steps, "steps"), _whole(seed, "seed")
        image_temperature = _number(image_temperature, "image temperature")
        text_temperature = _number(text_temperature, "text temperature")
        gallery, texts, specs = [], {}, []
        for group in [names] if chain else [[n] for n in names]:
            request = build_request(self.model.model, values, group, seed=seed,
                                    steps=[steps if image_target[n] else None for n in group],
                                    temps=[image_temperature if image_target[n] else text_temperature
                                           for n in group], cfg=cfg)
            pipe = self.model.base.with_spec(request.spec, **request.options)
            out = request.run(pipe, progress=progress, label="the {name} condition:")
            pictures, words = self._present(out, group)
            gallery += pictures
            texts.update(words)
            specs.append(request.spec)
        result = Result(gallery, texts, time.perf_counter() - t0, "; ".join(specs))
        log.info("serve: %s", result.summary())
        return result

    def _check_roles(self, roles: Sequence[str], known: Mapping[str, str], what: str) -> None:
        bad = [r for r in roles if r not in known]
        if bad:
            raise ConfigError(f"{self.name} cannot take {bad} as {what}; choose from {list(known)}")

    def _value(self, role: str, *, image: Any, scene: Scene | None, caption: str, boxes: Sequence[Sequence[Any]],
               palette: Sequence[str], metadata: Sequence[Sequence[Any]]) -> Any:
        """The condition value of one role, checked."""
        if role == "rgb":
            if image is None:
                raise DataError("the RGB condition has no image: pick an example scene or upload a photo")
            return self._rgb(image)
        if role in IMAGE_ROLES:
            if scene is None:
                raise DataError(f"a {ROLES[role]} condition comes from an example scene's ground truth; pick an "
                                f"example scene, or untick {ROLES[role]} (an uploaded photo has none)")
            return self.model.image_tokens(role, [scene.maps[role]], self.inputs[role])
        if role == "caption":
            if not caption or not caption.strip():
                raise DataError("the caption condition is empty: type a caption or untick it")
            return caption.strip()
        if role == "det":
            return parse_boxes(boxes)
        if role == "color_palette":
            return parse_palette(palette)
        return parse_metadata(metadata)

    def _rgb(self, image: Any) -> Any:
        """The RGB condition from what the page, a script or a raw API call sends: a PIL image, a uint8 array (the
        pipeline checks its shape), a file path, or Gradio's file record ({"path": ...})."""
        from PIL import Image

        if isinstance(image, Mapping) and isinstance(image.get("path"), str):
            image = image["path"]
        if isinstance(image, (str, os.PathLike)):
            image = load_image(image)
        if isinstance(image, np.ndarray):
            return image
        if not isinstance(image, Image.Image):
            raise DataError(f"the RGB condition is a {type(image).__name__}, not an image: give a PIL image, a uint8 "
                            "(H, W, 3) array or the path of an image file")
        return to_model_size(image.convert("RGB"), self.size)

    def _present(self, out: GenerationOutput, names: Sequence[str]) -> tuple[list[tuple[Any, str]], dict[str, str]]:
        """Every target as a labelled picture (boxes drawn on the input or generated RGB) and its text."""
        from PIL import Image

        role_of = {n: r for r, n in self.outputs.items()}
        gallery, texts = [], {}
        backdrop = _backdrop(out, self.outputs.get("rgb"))
        for name in names:
            role = role_of[name]
            picture = self._picture(role, name, out)
            parsed = out.parsed.get(name, [None])[0]
            if role == "det" and isinstance(parsed, list) and backdrop is not None:
                picture = draw_boxes(backdrop.resize((SHOW, SHOW), Image.BICUBIC), parsed)
            if picture is not None:
                if picture.size != (SHOW, SHOW):
                    picture = picture.convert("RGB").resize((SHOW, SHOW), Image.NEAREST)
                gallery.append((picture, ROLES[role]))
            if name in out.texts:
                texts[ROLES[role]] = _describe(role, out.texts[name][0], parsed)
        return gallery, texts


    def _picture(self, role: str, name: str, out: GenerationOutput):
        """A generated image as `open4m demo` and `open4m show` draw it (metric depth through turbo with the
        sky black, normals as RGB, classes coloured, edges white on black), else as the pipeline rendered it."""
        from PIL import Image

        from ..data.visualize import modality_tile

        if role in IMAGE_ROLES and name in out.decoded:
            tok = self.model.tokenizer(name)
            if self.model.forms.unsupported(role, tok) is None:
                array = self.model.forms.from_model(role, out.decoded[name][:1], tok)[0]
                tile = modality_tile(role, array, SHOW)
                if tile is not None:
                    return Image.fromarray(tile)
        return out.images.get(name, [None])[0]


def _backdrop(out: GenerationOutput, rgb_target: str | None):
    """The picture boxes are drawn on: the input photo, else the generated RGB, else a grey canvas."""
    from PIL import Image

    for images in out.inputs.values():
        return images[0].convert("RGB")
    if rgb_target and rgb_target in out.images:
        return out.images[rgb_target][0].convert("RGB")
    return Image.new("RGB", (SHOW, SHOW), (200, 200, 200))


def _describe(role: str, text: str, parsed: Any) -> str:
    """A generated sequence for people: boxes as rows, palettes as hex colours, metadata as fields."""
    if isinstance(parsed, Exception) or parsed is None:
        return text.strip() if not isinstance(parsed, Exception) else f"{text.strip()}\n(does not parse: {parsed})"
    if role == "det":
        return "\n".join(_describe_box(b) for b in parsed) or "(no boxes)"
    if role == "color_palette":
        return " ".join("#%02x%02x%02x" % tuple(int(v) for v in c) for c in parsed)
    if role == "metadata":
        return "\n".join(f"{k}: {v:.3g}" for k, v in parsed.items())
    return text.strip()


def _describe_box(box: Any) -> str:
    """``cube 58%: (0.56, 0.31) - (0.77, 0.52); else sphere 2%`` (the model's confidence and its runner-up
    class, where the generation had them)."""
    where = f"({box.xmin:.2f}, {box.ymin:.2f}) - ({box.xmax:.2f}, {box.ymax:.2f})"
    if box.confidence is None:
        return f"{box.class_name}: {where}"
    runner_up = f"; else {box.alternatives[0][0]} {box.alternatives[0][1]:.0%}" if box.alternatives else ""
    return f"{box.class_name} {box.confidence:.0%}: {where}{runner_up}"


def to_model_size(image, size: int):
    """A PIL image at the model's ``size`` x ``size``: a box filter, which also undoes an integer nearest-neighbour
    enlargement exactly (the page shows the input enlarged) and averages a photo's pixels down fairly."""
    from PIL import Image

    return image if image.size == (size, size) else image.resize((size, size), Image.BOX)


def load_image(path: str | os.PathLike):
    """An uploaded file -> an 8-bit RGB PIL image (grey, palette, RGBA and 16-bit files as the photo looks); a
    file that is no image, a truncated or a hostile one is a one-line `DataError`."""
    return rgb_image(open_image(path, "the uploaded file"))


def _whole(value: Any, what: str) -> int:
    """A whole number from the page (Gradio sends 8.0 for 8), else a one-line `DataError`."""
    number = _number(value, what)
    if number != int(number):
        raise DataError(f"{what}: {value!r} is not a whole number")
    return int(number)


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what}: {value!r} is not a number") from None
    if not np.isfinite(number):
        raise DataError(f"{what}: {value!r} is not a finite number")
    return number


def table_rows(table: Any) -> list[list[Any]]:
    """A table from the page (a list of rows, or a pandas DataFrame) -> its non-empty rows."""
    if hasattr(table, "values") and hasattr(table, "columns"):
        table = table.values.tolist()
    return [list(r) for r in (table or []) if any(str(c).strip() for c in r if c is not None)]


def parse_boxes(table: Any) -> Boxes:
    """Rows of (xmin, ymin, xmax, ymax, class), corners as fractions of the image -> `Boxes`, each checked."""
    boxes = []
    for i, row in enumerate(table_rows(table), start=1):
        if len(row) < 5:
            raise DataError(f"box {i}: give xmin, ymin, xmax, ymax and a class name")
        x0, y0, x1, y1 = (_number(v, f"box {i}") for v in row[:4])
        label = str(row[4] or "").strip()
        if not label:
            raise DataError(f"box {i}: the class name is empty")
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise DataError(f"box {i} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the image: corners are fractions "
                            "of the image size, 0 <= xmin < xmax <= 1 and 0 <= ymin < ymax <= 1")
        boxes.append(Box(x0, y0, x1, y1, label))
    if not boxes:
        raise DataError("the boxes condition has no box: add a row (xmin, ymin, xmax, ymax, class) or untick boxes")
    return Boxes(boxes)


def box_from_corners(first: Sequence[float], second: Sequence[float], size: Sequence[int],
                     label: str = "object") -> list[Any]:
    """Two clicked pixels (x, y) on an image of ``size`` (width, height) -> a box row of fractions, clipped to it."""
    (x0, y0), (x1, y1) = ([min(max(float(v) / float(n), 0.0), 1.0) for v, n in zip(point, size)]
                          for point in (first, second))
    return [round(min(x0, x1), 3), round(min(y0, y1), 3), round(max(x0, x1), 3), round(max(y0, y1), 3), label]


def parse_palette(colors: Sequence[str]) -> ColorPalette:
    """'#rrggbb' colours (empty ones skipped) -> a `ColorPalette` of 1 to 7 colours."""
    rgb = []
    for c in colors:
        if c is None or not str(c).strip():
            continue
        text = str(c).strip()
        match = _HEX.match(text)
        digits = match.group(1) if match else _rgba(text)
        if digits is None:
            raise DataError(f"palette colour {text!r}: write it as #rrggbb, e.g. #d04030")
        rgb.append(tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4)))
    if not 1 <= len(rgb) <= 7:
        raise DataError(f"the palette has {len(rgb)} colours; give 1 to 7")
    return ColorPalette(rgb)


def _rgba(text: str) -> str | None:
    """Colour pickers may answer 'rgba(r, g, b, a)': -> 'rrggbb' (None when it is not that either)."""
    m = re.match(r"^rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)", text)
    if m is None:
        return None
    return "".join("%02x" % max(0, min(255, round(float(v)))) for v in m.groups())


def parse_metadata(table: Any) -> Metadata:
    """Rows of (field, value) -> `Metadata`; fields the codec does not know are refused by name."""
    fields = {}
    for row in table_rows(table):
        key = str(row[0]).strip() if row else ""
        if not key or len(row) < 2:
            raise DataError(f"metadata row {row}: give a field name and a value")
        fields[key] = _number(row[1], f"metadata {key}")
    if not fields:
        raise DataError("the metadata condition has no field: add a row (field, value) or untick metadata")
    value = Metadata(**fields)
    value.to_text()  # unknown fields: a DataError naming the known ones
    return value


def parse_guidance(text: str, conditions: Mapping[str, str]) -> Any:
    """The guidance box -> `cfg`: one scale ('3'), or weights per condition by role or name ('caption=3, rgb=1')."""
    text = (text or "").strip()
    if not text:
        return None
    if "=" not in text:
        return _number(text, "guidance")
    weights = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataError(f"guidance {part.strip()!r}: write ROLE=WEIGHT, e.g. caption=3")
        name = conditions.get(key) or conditions.get(next((r for r, label in ROLES.items() if label == key), ""), key)
        weights[name] = _number(value, f"guidance {key}")
    return weights
