"""The `open4m serve` page: Gradio widgets wired to `open4m.serve.session.Studio`.

Layout, left to right: the conditions (example scenes, an upload button, the RGB image, caption,
boxes, palette, metadata, and which of them condition), then the targets and decoding options, the
Generate button and the outputs side by side. Everything the page computes is a `Studio` call; this
module only converts widget values and turns `Open4mError`s into messages in the page (`gr.Error`),
so a bad input never shows a stack trace and the server keeps serving.

Gradio is imported here only (the optional `demo` extra). Analytics are switched off before it is
imported, and the page loads nothing from outside the server, so it works offline. (No `from __future__ import annotations` here: Gradio reads the handlers'
annotations, `gr.SelectData` included, at run time.)
"""

import functools
import os
from typing import Any

import numpy as np

from ..errors import ConfigError, Open4mError
from .session import SHOW, ROLES, Result, Scene, Studio, box_from_corners, load_image, table_rows, to_model_size

__all__ = ["build_app", "launch", "check_address", "import_gradio", "EXAMPLES", "PALETTE_SLOTS", "TITLE"]

TITLE = "open4m · any-to-any generation"
EXAMPLES = 6  # example scenes on the page
PALETTE_SLOTS = 4  # colour pickers (the world model's palettes have 4 colours; official models take 1-7);
# `generate` below names one argument per picker
# Small images (the world model's 64 px) drawn without blur.
CSS = "#rgb-input img, #examples img, #outputs img { image-rendering: pixelated; }"
DEFAULT_TARGETS = ("depth", "normal", "semseg", "canny_edge", "caption", "det")


def import_gradio():
    """Gradio, or a one-line error that says how to install it (it is the optional `demo` extra)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: the page works offline
    try:
        import gradio
    except ImportError as err:
        raise ConfigError("open4m serve needs Gradio, the optional demo extra: pip install 'open4m[demo]'") from err
    return gradio


def _thumb(rgb: np.ndarray, size: int = 96):
    from PIL import Image

    return Image.fromarray(rgb).resize((size, size), Image.NEAREST)


def _texts(texts: dict[str, str]) -> str:
    return "\n\n".join(f"{role}:\n{text}" for role, text in texts.items())


def build_app(studio: Studio):
    """The page (a `gradio.Blocks`) for ``studio``; it opens with example scene 0 selected."""
    gr = import_gradio()
    scene_of = functools.lru_cache(maxsize=EXAMPLES + 2)(studio.example)
    first = scene_of(0)

    def shown(image):
        """The RGB condition as the page shows it: the model's input, enlarged without blur (SHOW pixels a side),
        so clicks on it land on whole pixels; `Studio.generate` shrinks it back exactly (box filter)."""
        from PIL import Image

        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        return to_model_size(picture, studio.size).resize((SHOW, SHOW), Image.NEAREST)

    def scene_values(scene: Scene) -> list[Any]:
        colors = (scene.palette + [None] * PALETTE_SLOTS)[:PALETTE_SLOTS]
        return [shown(scene.rgb), scene.caption, scene.boxes, *colors, scene.metadata, scene.index]

    def pick_example(evt: gr.SelectData):
        scene = scene_of(int(evt.index))
        return [*scene_values(scene), f"example scene {scene.index} (test split, never seen in training)"]

    def upload(file):
        try:
            image = load_image(file if isinstance(file, str) else file.name)
        except Open4mError as err:
            raise gr.Error(str(err)) from None
        size = studio.size
        return shown(image), None, f"uploaded photo, shown at the model's {size}x{size} input size"

    def click_corner(picture, table, first, evt: gr.SelectData):
        """Two clicks on the RGB image draw a box: the first sets a corner, the second adds the row."""
        if picture is None:
            raise gr.Error("there is no image to draw on: pick an example scene or upload a photo")
        point = tuple(evt.index)
        if first is None:
            return table, point, f"corner {point} set: click the opposite corner of the box"
        row = box_from_corners(first, point, picture.size)
        return [*table_rows(table), row], None, (f"box {row[:4]} added: name its class in the table and tick "
                                                 "boxes under 'condition on'")

    def generate(conditions, targets, image, scene_index, caption, boxes, palette_1, palette_2, palette_3, palette_4,
                 metadata, steps, image_temperature, text_temperature, guidance, seed, chain,
                 progress=gr.Progress(track_tqdm=True)):
        """One press of Generate (`progress` makes Gradio follow the sampler's tqdm bars in the page)."""
        try:
            scene = scene_of(int(scene_index)) if scene_index is not None else None
            result: Result = studio.generate(
                conditions or [], targets or [], image=image, scene=scene, caption=caption, boxes=boxes,
                palette=[palette_1, palette_2, palette_3, palette_4], metadata=metadata, steps=steps,
                image_temperature=image_temperature, text_temperature=text_temperature,
                guidance=guidance, seed=0 if seed is None else seed, chain=bool(chain), progress=True)
        except Open4mError as err:
            raise gr.Error(str(err)) from None
        status = f"Generated {result.summary()}."
        return result.gallery, _texts(result.texts), status

    labels_in = [(ROLES[r], r) for r in studio.inputs]
    labels_out = [(ROLES[r], r) for r in studio.outputs]
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# open4m: any-to-any generation\nModel: {studio.name} ({studio.size} px). Pick an example "
                    "scene or upload a photo, choose what conditions and what to generate, press **Generate**.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                examples = gr.Gallery([(_thumb(scene_of(i).rgb), f"scene {i}") for i in range(EXAMPLES)],
                                      label="example scenes (click one)", columns=EXAMPLES, height=140,
                                      allow_preview=False, interactive=False, elem_id="examples", format="png")
                with gr.Row():
                    image = gr.Image(shown(first.rgb), label="RGB", type="pil", interactive=False, height=280,
                                     elem_id="rgb-input", format="png")
                    with gr.Column():
                        upload_button = gr.UploadButton("Upload a photo", file_types=["image"], elem_id="upload")
                        conditions = gr.CheckboxGroup(labels_in, value=["rgb"], label="condition on",
                                                      elem_id="conditions")
                caption = gr.Textbox(first.caption, label="caption", lines=2, elem_id="caption")
                boxes = gr.Dataframe(first.boxes, headers=["xmin", "ymin", "xmax", "ymax", "class"],
                                     datatype=["number", "number", "number", "number", "str"], column_count=5,
                                     label="boxes: type corners as fractions of the image, or click two corners "
                                           "on the RGB image", interactive=True,
                                     elem_id="boxes")
                with gr.Row():
                    palette = [gr.ColorPicker(c, label=f"palette {i + 1}", elem_id=f"palette-{i}")
                               for i, c in enumerate((first.palette + [None] * PALETTE_SLOTS)[:PALETTE_SLOTS])]
                metadata = gr.Dataframe(first.metadata, headers=["field", "value"], datatype=["str", "number"],
                                        column_count=2, label="metadata", interactive=True, elem_id="metadata",
                                        max_height=220)
            with gr.Column(scale=6, min_width=360):
                targets = gr.CheckboxGroup(labels_out, value=[r for r in DEFAULT_TARGETS if r in studio.outputs],
                                           label="generate", elem_id="targets")
                with gr.Row():
                    steps = gr.Slider(1, 16, value=8, step=1, label="MaskGIT steps (images)")
                    image_temp = gr.Slider(0, 2, value=0.0, step=0.05, label="temperature (images)")
                    text_temp = gr.Slider(0, 2, value=0.0, step=0.05, label="temperature (texts)")
                with gr.Row():
                    guidance = gr.Textbox("1", label="guidance: one scale, or per condition (caption=3, rgb=1)",
                                          elem_id="guidance")
                    seed = gr.Number(0, label="seed", precision=0, elem_id="seed")
                    chain = gr.Checkbox(False, label="chain: each target also sees the ones before it", elem_id="chain")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown("Example scene 0 is selected: press Generate.", elem_id="status")
                outputs = gr.Gallery(label="outputs", columns=3, height="auto", allow_preview=True, interactive=False,
                                     elem_id="outputs", format="png")
                texts = gr.Textbox(label="generated texts", lines=6, interactive=False, elem_id="texts")
        scene_index = gr.State(0)
        corner = gr.State(None)  # the first corner of a box being drawn on the image

        scene_widgets = [image, caption, boxes, *palette, metadata, scene_index]
        examples.select(pick_example, None, [*scene_widgets, status], api_name="example")
        image.select(click_corner, [image, boxes, corner], [boxes, corner, status])
        upload_button.upload(upload, upload_button, [image, scene_index, status], api_name="upload")
        button.click(generate, [conditions, targets, image, scene_index, caption, boxes, *palette, metadata, steps,
                                image_temp, text_temp, guidance, seed, chain], [outputs, texts, status],
                     api_name="generate")
    return app


def check_address(host: str, port: int) -> None:
    """Fail at once, before a model loads, when ``host:port`` cannot be listened on (taken, or not this machine's)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as err:
        raise ConfigError(f"cannot serve on {host}:{port} ({err.strerror or err}); choose another --port or --host") from None


def launch(app, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True) -> str:
    """Serve ``app`` on ``host:port``; returns its URL (with ``block=False``, while it serves in the background)."""
    app.queue(default_concurrency_limit=1)  # one generation at a time: the model is shared
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                               ssr_mode=False, show_error=False, footer_links=["api"], css=CSS)
    except OSError as err:  # the port is taken, or the host is not an address of this machine
        raise ConfigError(f"cannot serve on {host}:{port} ({err}); choose another --port or --host") from err
    return url
