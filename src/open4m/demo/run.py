"""`open4m demo`: fresh held-out scenes through the world model, as pictures and numbers.

Renders scenes from the `test` split (never seen in training), runs every task of
`open4m.eval.runner` on them (through `Pipeline`, one per target spec), and writes `grid.png` (one
row per scene: input | ground truth | prediction per task, labelled), one PNG per task, and
`metrics.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..atomic import save_image
from ..data.synthetic import world
from ..errors import DataError
from ..eval.models import EvalModel
from ..eval.runner import TASKS, EvalResult, evaluate, write_json
from ..tokenizers.sequences import Box

log = logging.getLogger(__name__)

TILE = 128
CAPTION_INPUT = "caption (input)"


def _tile(name: str, value: Any, rgb: np.ndarray | None = None) -> np.ndarray:
    from ..data.visualize import modality_tile

    tile = modality_tile(name, value, TILE, rgb)
    if tile is None:
        raise DataError(f"no picture for {name}")
    return tile


def _boxes_value(boxes: Sequence[Box] | None) -> dict[str, Any]:
    """Generated boxes (None: a generation that did not parse) in the data's det form, for drawing (with the
    model's confidence where it has one)."""
    return {"instances": [{"boxes": [b.xmin, b.ymin, b.xmax, b.ymax], "class_name": b.class_name,
                           **({} if b.confidence is None else {"confidence": b.confidence})} for b in boxes or []]}


def _palette_tile(colors: Sequence[Sequence[int]]) -> np.ndarray:
    return _tile("color_palette", [{str(len(colors)): [list(c) for c in colors]}])


def _safe_parse(key: str, text: str) -> Any:
    try:
        return world.parse_text(key, text)
    except (ValueError, IndexError, KeyError):
        return None


def _caption_tile(text: str) -> np.ndarray:
    """The whole caption, two tiles wide and as tall as it needs (the row grows to fit)."""
    from ..data.visualize import text_tile

    return text_tile(text, 2 * TILE)


def labelled(columns: Sequence[tuple[str, list[np.ndarray]]]) -> np.ndarray:
    """Columns of tiles under a title row -> one image. Each column is as wide as its widest tile and
    each row as tall as its tallest, so full captions sit beside square maps."""
    from PIL import Image, ImageDraw

    head = 16
    rows = len(columns[0][1])
    widths = [max(t.shape[1] for t in tiles) for _, tiles in columns]
    heights = [max(tiles[r].shape[0] for _, tiles in columns) for r in range(rows)]
    canvas = Image.new("RGB", (sum(widths), head + sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for (title, tiles), width in zip(columns, widths):
        draw.text((x + 3, 2), title, fill=(0, 0, 0))
        y = head
        for t, height in zip(tiles, heights):
            canvas.paste(Image.fromarray(np.ascontiguousarray(t)), (x, y))
            y += height
        x += width
    return np.asarray(canvas)


def task_columns(samples: Sequence[Mapping[str, Any]], result: EvalResult,
                 chain: Sequence[str] = ()) -> dict[str, list[tuple[str, list[np.ndarray]]]]:
    """Per task: its labelled columns (input, ground truth, prediction); `chain` is what caption -> RGB drew first
    (the model's `caption_rgb_chain`), named in its column."""
    p = result.predictions
    rgb = [s["rgb"] for s in samples]
    inp = ("input RGB", [_tile("rgb", r) for r in rgb])
    cols: dict[str, list[tuple[str, list[np.ndarray]]]] = {}
    for task, name in (("depth", "depth"), ("normal", "normal"), ("semseg", "semseg"), ("edges", "canny_edge")):
        if task in p:
            cols[task] = [inp, (f"{task} truth", [_tile(name, s[name]) for s in samples]),
                          (f"{task} pred", [_tile(name, v) for v in p[task]])]
    if "det" in p:
        cols["det"] = [("boxes truth", [_tile("det", s["det"], s["rgb"]) for s in samples]),
                       ("boxes pred", [_tile("det", _boxes_value(b), r) for b, r in zip(p["det"], rgb)])]
    if "caption" in p:
        cols["caption"] = [inp, ("caption truth", [_caption_tile(s["caption"]) for s in samples]),
                           ("caption pred", [_caption_tile(t) for t in p["caption"]])]
    if "palette" in p:
        cols["palette"] = [inp, ("palette truth", [_palette_tile(world.palette_of(s)) for s in samples]),
                           ("palette pred", [_palette_tile(_safe_parse("color_palette", t) or [[255, 255, 255]])
                                             for t in p["palette"]])]
    if "metadata" in p:
        truth = [{k: float(s["metadata"][k]) for k in world.METADATA_KEYS} for s in samples]
        cols["metadata"] = [inp, ("metadata truth", [_tile("metadata", t) for t in truth]),
                            ("metadata pred", [_tile("metadata", _safe_parse("metadata", t) or {"unparsable": t})
                                               for t in p["metadata"]])]
    if "caption2rgb" in p:
        cols["caption2rgb"] = [(CAPTION_INPUT, [_caption_tile(s["caption"]) for s in samples]),
                               ("->".join(("caption", *chain, "RGB")),
                                [_tile("rgb", draws[0][0]) for draws in p["caption2rgb"]]),  # each scene's first draw
                               ("its boxes", [_tile("det", _boxes_value(_safe_parse("det", draws[0][1])), draws[0][0])
                                              for draws in p["caption2rgb"]])]
    if "depthcaption2rgb" in p:
        cols["depthcaption2rgb"] = [("depth input", [_tile("depth", s["depth"]) for s in samples]),
                                    ("RGB truth", [_tile("rgb", r) for r in rgb]),
                                    ("depth+caption->RGB", [_tile("rgb", g["samples"][0]) for g in p["depthcaption2rgb"]]),
                                    ("least-squares estimate", [_tile("rgb", g["estimate"])
                                                                for g in p["depthcaption2rgb"]])]
    return cols


def save_pictures(out: Path, samples: Sequence[Mapping[str, Any]], result: EvalResult, model: Any = None) -> list[Path]:
    """grid.png (all tasks side by side), one PNG per task and, for a `model` that reads captions and
    boxes, controls.png (generation under edited conditions, `open4m.demo.controls`)."""
    from PIL import Image

    from .controls import can_control, control_columns

    cols = task_columns(samples, result, getattr(model, "caption_rgb_chain", ()))
    written = []
    for task, c in cols.items():
        path = save_image(Image.fromarray(labelled(c)), out / f"{task}.png")
        written.append(path)
    # the grid shows each caption once: caption -> RGB's input is the caption task's ground truth
    everything = [col for c in cols.values() for col in c
                  if col[0] != "input RGB" and not (col[0] == CAPTION_INPUT and "caption" in cols)]
    grid = out / "grid.png"
    save_image(Image.fromarray(labelled([("input RGB", [_tile("rgb", s["rgb"]) for s in samples]), *everything])), grid)
    written.insert(0, grid)
    if model is not None:
        why = can_control(model)
        if why:
            log.info("demo: no controls.png (%s)", why)
            (out / "controls.png").unlink(missing_ok=True)  # an earlier demo's, which this model could not draw
        else:
            columns = control_columns(model, samples, tile=_tile, caption_tile=_caption_tile)
            written.append(save_image(Image.fromarray(labelled(columns)), out / "controls.png"))
    return written


def is_demo_output(path: str | Path) -> bool:
    """Whether `path` holds only what `run_demo` writes (the demo run again replaces its own results)."""
    own = {"grid.png", "controls.png", "metrics.json", *(f"{task}.png" for task in TASKS)}
    entries = {p.name for p in Path(path).iterdir()} if Path(path).is_dir() else set()
    return bool(entries) and entries <= own


def run_demo(model_path: str | Path | None = None, out: str | Path = "open4m-demo", *, scenes: int = 6, start: int = 0,
             tasks: Sequence[str] = TASKS, progress: bool = True) -> tuple[EvalResult, Path]:
    """Render `scenes` test-split scenes from index `start`, run `tasks`, write pictures and metrics.

    `model_path` is a world model folder (default: the model shipped in the package); one that is not
    (or lacks files) stops with a message that says how to train one.
    """
    from tqdm import tqdm

    from ..data.synthetic import generate_sample, seed_for
    from ..sources.world import SHIPPED, load_tokenizers

    t0 = time.perf_counter()
    folder = Path(model_path) if model_path else SHIPPED
    if not (folder / "world.json").is_file():  # the demo's tasks are the world's: only a world model runs them
        load_tokenizers(folder)  # raises MissingModelError, naming what is missing and how to train one
    model = EvalModel.load(folder)
    size = model.image_size
    samples = [generate_sample(seed_for("test", start + i), size, caption_order=model.caption_order)
               for i in tqdm(range(scenes), desc="render test scenes", unit="scene", disable=not progress)]
    result = evaluate(model, samples, tasks, batch_size=scenes, progress=progress)
    log.info("demo: %d test scenes scored in %.1f s", scenes, time.perf_counter() - t0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_pictures(out, samples, result, model)
    seconds = time.perf_counter() - t0
    write_json(result, out / "metrics.json", {"split": "test", "first_scene": start, "seconds": round(seconds, 1),
                                              "model": str(model_path or "shipped")})
    return result, out
