"""`Studio` and the page's parsers called directly (no Gradio, no server)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from open4m.data.synthetic import parse_caption
from open4m.errors import ConfigError, DataError
from open4m.generation.pipeline import Boxes, ColorPalette, Metadata
from open4m.serve.session import ROLES, load_image, parse_boxes, parse_guidance, parse_metadata, parse_palette


def test_roles_of_the_shipped_model(studio):
    assert studio.size == 64
    assert list(studio.inputs) == list(ROLES)  # the world model takes and makes every role
    assert studio.inputs["caption"] == "world_caption" and studio.outputs["depth"] == "tok_depth@64"
    assert studio.inputs["rgb"] == "rgb@64" and studio.outputs["rgb"] == "tok_rgb@64"


def test_example_scene_fills_every_widget(studio):
    scene = studio.example(0)
    assert scene.rgb.shape == (64, 64, 3) and scene.rgb.dtype == np.uint8
    assert scene.caption and scene.boxes and len(scene.palette) == 4
    assert all(0 <= c <= 1 for row in scene.boxes for c in row[:4])
    assert {row[0] for row in scene.metadata} >= {"brightness", "colorfulness"}
    assert set(scene.maps) == {"depth", "normal", "semseg", "canny_edge"}
    # the example's values are valid conditions as they stand
    parse_boxes(scene.boxes), parse_palette(scene.palette), parse_metadata(scene.metadata)


def test_generate_every_output_side_by_side(studio):
    scene = studio.example(0)  # its greedy caption is short (degenerate captions run to 176 tokens: seconds)
    result = studio.generate(["rgb"], ["depth", "canny_edge", "caption", "det", "color_palette", "metadata"],
                             image=scene.rgb, steps=4, seed=0)
    labels = [label for _, label in result.gallery]
    # a palette swatch is shown only when the generated palette parses (the text then says why it does not)
    swatch = ["palette"] if "does not parse" not in result.texts["palette"] else []
    assert labels == ["depth", "edges", "boxes", *swatch]  # normals and segmentation: tests/serve/test_browser.py
    assert all(img.size == (256, 256) for img, _ in result.gallery)
    assert set(result.texts) == {"caption", "boxes", "palette", "metadata"}
    assert parse_caption(result.texts["caption"])["num_objects"] >= 1  # a world caption that states its count
    # each generated box with the model's confidence (and its runner-up class where it weighed one)
    assert re.fullmatch(r"([a-z ]+ \d+%: \([\d., ]+\) - \([\d., ]+\)(; else [a-z ]+ \d+%)?\n?)+", result.texts["boxes"])
    assert result.seconds > 0 and "rgb@64->tok_depth@64" in result.spec


def test_controllable_generation_from_typed_conditions(studio):
    scene = studio.example(2)
    result = studio.generate(["caption", "det", "color_palette", "metadata", "depth"], ["rgb"], scene=scene,
                             caption="a room with one large red metal cube.", boxes=[[0.2, 0.3, 0.7, 0.9, "cube"]],
                             palette=["#d04030", "#202020", "", None], metadata=scene.metadata, guidance="caption=2",
                             seed=3)
    (image, label), = result.gallery
    assert label == "RGB" and image.size == (256, 256)


def test_chain_runs_one_spec(studio):
    result = studio.generate(["rgb"], ["depth", "normal"], image=studio.example(0).rgb, steps=2, chain=True)
    assert result.spec == "rgb@64->tok_depth@64->tok_normal@64"


@pytest.mark.parametrize("kwargs, message", [
    (dict(conditions=[], targets=["depth"]), "at least one condition"),
    (dict(conditions=["rgb"], targets=[]), "at least one modality to generate"),
    (dict(conditions=["rgb"], targets=["rgb"]), "both a condition and a target"),
    (dict(conditions=["rgb"], targets=["depth"], image=None), "no image"),
    (dict(conditions=["depth"], targets=["rgb"]), "example scene"),
    (dict(conditions=["caption"], targets=["rgb"], caption="  "), "caption condition is empty"),
    (dict(conditions=["rgb"], targets=["depth"], guidance="depth=3"), "neither a condition nor a target drawn before it"),
    (dict(conditions=["rgb"], targets=["bogus"]), "cannot take"),
    # what a raw API call may send instead of the page's widgets
    (dict(conditions=["rgb"], targets=["depth"], image=123), "a int, not an image"),
    (dict(conditions=["rgb"], targets=["depth"], image={"path": "/no/such/photo.png"}), "cannot read it"),
    (dict(conditions=["rgb"], targets=["depth"], steps="many"), "steps: 'many' is not a number"),
    (dict(conditions=["rgb"], targets=["depth"], steps=2.5), "steps: 2.5 is not a whole number"),
    (dict(conditions=["rgb"], targets=["depth"], seed="x"), "seed: 'x' is not a number"),
    (dict(conditions=["rgb"], targets=["depth"], image_temperature="hot"), "image temperature: 'hot' is not a number"),
])
def test_bad_requests_are_one_line_errors(studio, kwargs, message):
    kwargs.setdefault("image", studio.example(0).rgb)
    with pytest.raises((ConfigError, DataError), match=message):
        studio.generate(kwargs.pop("conditions"), kwargs.pop("targets"), **kwargs)


def test_rgb_condition_as_a_gradio_file_record(studio, tmp_path):
    from PIL import Image

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((80, 80), 90, np.uint8)).save(path)  # grey, and not the model's size
    result = studio.generate(["rgb"], ["depth"], image={"path": str(path)}, steps=2.0, seed=1.0)
    (image, label), = result.gallery
    assert label == "depth" and image.size == (256, 256)


def test_boxes():
    boxes = parse_boxes([[0.1, 0.2, 0.5, 0.6, "cube"], [None, None, None, None, None], ["", "", "", "", ""]])
    assert isinstance(boxes, Boxes) and boxes.boxes[0].class_name == "cube"
    with pytest.raises(DataError, match="box 1 .* outside the image"):
        parse_boxes([[0.5, 0.2, 1.4, 0.6, "cube"]])
    with pytest.raises(DataError, match="outside the image"):
        parse_boxes([[0.6, 0.2, 0.5, 0.6, "cube"]])  # xmin > xmax
    with pytest.raises(DataError, match="class name is empty"):
        parse_boxes([[0.1, 0.2, 0.5, 0.6, " "]])
    with pytest.raises(DataError, match="not a number"):
        parse_boxes([[0.1, "left", 0.5, 0.6, "cube"]])
    with pytest.raises(DataError, match="no box"):
        parse_boxes([])


def test_palette_and_metadata():
    assert parse_palette(["#ff0000", "00ff00", "rgba(0, 0, 255, 1)", ""]).colors == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert isinstance(parse_palette(["#123456"]), ColorPalette)
    with pytest.raises(DataError, match="#rrggbb"):
        parse_palette(["red"])
    with pytest.raises(DataError, match="1 to 7"):
        parse_palette(["", None])
    assert parse_metadata([["brightness", 120], ["n_humans", "2"]]).fields == {"brightness": 120.0, "n_humans": 2.0}
    assert isinstance(parse_metadata([["brightness", 1]]), Metadata)
    with pytest.raises(DataError, match="unknown fields"):
        parse_metadata([["loudness", 3]])


def test_guidance():
    conditions = {"rgb": "rgb@64", "caption": "world_caption"}
    assert parse_guidance("3", conditions) == 3.0 and parse_guidance("", conditions) is None
    assert parse_guidance("caption=3, rgb=1", conditions) == {"world_caption": 3.0, "rgb@64": 1.0}
    with pytest.raises(DataError, match="ROLE=WEIGHT"):
        parse_guidance("=3", conditions)


def test_shown_images_shrink_back_exactly(studio):
    from PIL import Image

    from open4m.serve.session import to_model_size

    rgb = studio.example(4).rgb
    shown = Image.fromarray(rgb).resize((256, 256), Image.NEAREST)  # how the page shows the RGB condition
    assert (np.asarray(to_model_size(shown, 64)) == rgb).all()


def test_boxes_drawn_by_two_clicks():
    from open4m.serve.session import box_from_corners

    assert box_from_corners((192, 200), (64, 32), (256, 256)) == [0.25, 0.125, 0.75, 0.781, "object"]
    assert box_from_corners((-5, 10), (300, 20), (256, 256))[:4] == [0.0, 0.039, 1.0, 0.078]  # clipped to the image


def test_upload_that_is_no_image(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    with pytest.raises(DataError, match="not an image file"):
        load_image(str(fake))


def test_upload_of_a_16_bit_photo_reads_as_the_photo_looks(tmp_path):
    from PIL import Image

    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 15)  # 0 .. 61425: most above 255
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    rgb = np.asarray(load_image(str(path)))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and 100 < rgb[32, 0, 0] < 155  # scaled, not clipped white
