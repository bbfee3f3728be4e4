"""The controllable-generation picture: edits that change one thing, generations that differ only by it."""

import numpy as np
import pytest

from open4m.data.synthetic import generate_sample, parse_caption, seed_for
from open4m.demo.controls import BOX_SHIFT, can_control, control_columns, move_first_box, recolour
from open4m.demo.run import TILE, labelled

CAPTION = ("Three objects rest on the floor. On the floor: a large green metal cylinder, a small orange metal cone "
           "and a large brown matte cube. The large green metal cylinder is in front of the small orange metal cone.")


def test_recolour_changes_every_mention_of_the_first_object_and_nothing_else():
    edited, what = recolour(CAPTION)
    assert what == "green -> brown"
    before, after = parse_caption(CAPTION), parse_caption(edited)
    assert after["num_objects"] == before["num_objects"] and len(after["relations"]) == len(before["relations"])
    assert after["objects"][0] == {**before["objects"][0], "color": "brown"}
    assert after["objects"][1:] == before["objects"][1:]
    assert after["relations"][0]["subject"]["color"] == "brown"  # the relation sentence names the same object
    assert edited.replace("large brown metal cylinder", "large green metal cylinder") == CAPTION


def test_recolour_leaves_a_caption_without_objects_alone():
    assert recolour("The room is empty.") == ("The room is empty.", "")
    assert recolour("no count here") == ("no count here", "")


def test_move_first_box_keeps_its_size_and_stays_in_the_image():
    det = {"instances": [{"boxes": [0.1, 0.2, 0.3, 0.5], "class_name": "cube"},
                         {"boxes": [0.5, 0.5, 0.6, 0.6], "class_name": "cone"}]}
    moved = move_first_box(det)
    assert moved["instances"][0]["boxes"] == pytest.approx([0.1 + BOX_SHIFT, 0.2, 0.3 + BOX_SHIFT, 0.5])
    assert moved["instances"][1] == det["instances"][1]
    assert det["instances"][0]["boxes"] == [0.1, 0.2, 0.3, 0.5]  # the scene's own boxes are not touched
    left = move_first_box({"instances": [{"boxes": [0.8, 0.1, 0.95, 0.2], "class_name": "cube"}]})
    assert left["instances"][0]["boxes"] == pytest.approx([0.8 - BOX_SHIFT, 0.1, 0.95 - BOX_SHIFT, 0.2])
    assert move_first_box({"instances": []}) == {"instances": []}


def test_labelled_grid_fits_tiles_of_different_sizes():
    square = np.zeros((TILE, TILE, 3), np.uint8)
    tall = np.full((3 * TILE, 2 * TILE, 3), 255, np.uint8)
    grid = labelled([("a", [square, square]), ("b", [tall, square])])
    assert grid.shape == (16 + 3 * TILE + TILE, 3 * TILE, 3)


def test_control_columns_differ_only_where_the_condition_does(tiny_bundle):
    from open4m.eval.models import EvalModel
    from open4m.demo.run import _caption_tile, _tile

    model = EvalModel.load(tiny_bundle)
    assert can_control(model) is None
    sample = generate_sample(seed_for("test", 0), model.image_size)
    plain = {**sample, "caption": "The room is empty."}  # nothing to recolour: both generations see one caption
    columns = control_columns(model, [sample, plain], steps=2, tile=_tile, caption_tile=_caption_tile)
    titles = [t for t, _ in columns]
    assert titles == ["caption", "caption->RGB", "one colour changed", "edited->RGB", "boxes", "boxes->RGB",
                      "first box moved", "moved->RGB"]
    assert all(len(tiles) == 2 for _, tiles in columns)
    tiles = dict(columns)
    np.testing.assert_array_equal(tiles["caption->RGB"][1], tiles["edited->RGB"][1])  # same condition, same seed
