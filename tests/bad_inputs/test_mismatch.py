"""Mismatches (a tokenizer that is not the model's: another vocabulary, another modality, swapped files,
another channel count, image size or token grid; a modality the model was not trained on) and empty
inputs (an empty caption, no condition, a target that is also an input, empty folders and galleries).

A tokenizer is judged from its own metadata (the modality it was trained on, its channels, vocabulary,
image size and patch) against the model's config: a bundle whose tokenizer files were exchanged is
refused with the reason instead of being scored as if it were fine.
"""

import shutil

import pytest

from battery import Case

AREA = "Mismatches: models, tokenizers, modalities"
EMPTY = "Empty inputs"


def _generate(w, *extra, target="depth"):
    return ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", target, "--out", "out", *extra]


def _swapped(world, user):
    """A copy of the model whose depth and normal tokenizer files are exchanged."""
    shutil.copytree(world.model, user / "swapped")
    toks = user / "swapped" / "tokenizers"
    (toks / "tok_depth.safetensors").rename(toks / "tmp")
    (toks / "tok_normal.safetensors").rename(toks / "tok_depth.safetensors")
    (toks / "tmp").rename(toks / "tok_normal.safetensors")


def _depth_tokenizer_variant(**changes):
    """Setup: the model's depth tokenizer with some config fields changed (random weights), as tok.safetensors."""

    def setup(world, user):
        from dataclasses import replace

        from open4m.tokenizers import VQVAE, load_tokenizer

        config = load_tokenizer(world.model / "tokenizers" / "tok_depth.safetensors").config
        VQVAE(replace(config, **changes)).save_pretrained(user / "tok.safetensors")

    return setup


def _folder(name, files=()):
    def setup(world, user):
        (user / name).mkdir()
        for file in files:
            (user / name / file).write_text("not an image\n")

    return setup


def _gallery(n):
    def setup(world, user):
        import torch
        from safetensors.torch import save_file

        save_file({"vectors": torch.ones(n, 8)}, str(user / "gallery.index"),
                  metadata={"keys": "[" + ", ".join(f'"img{i}.png"' for i in range(n)) + "]"})

    return setup


def rgb_to_the_depth_tokenizer(world, user):
    """load_tokenizer(MODEL/tokenizers/tok_depth.safetensors).encode(PIL.Image.open(PHOTO))"""
    from PIL import Image

    from open4m.tokenizers import load_tokenizer

    load_tokenizer(world.model / "tokenizers" / "tok_depth.safetensors").encode(Image.open(world.photo))


def an_empty_gallery(world, user):
    """GalleryIndex.build([], [])"""
    from open4m.generation.retrieval import GalleryIndex

    GalleryIndex.build([], [])


def no_condition(world, user):
    """build_request(model, {}, ["depth"])"""
    from open4m.generation.request import build_request
    from open4m.model import FourM

    build_request(FourM.from_pretrained(world.model), {}, ["depth"])


CASES = [
    # -- a tokenizer that is not the model's -----------------------------------------------------------------
    Case("mismatch-features-tokenizer-on-files", AREA,
         "depth PNG files tokenized with a tokenizer that takes model-form depth (the world model's)",
         r"reads depth already in its model's form.*tokenize them with a tokenizer that reads such files",
         setup=lambda w, u: shutil.copytree(w.data, u / "data"),
         argv=lambda w, u: ["tokenize", "--data", "data", "--modality", "depth", "--tokenizer",
                            w.model / "tokenizers" / "tok_depth.safetensors"]),
    Case("mismatch-features-tokenizer-on-a-depth-png", AREA,
         "a depth PNG as the condition of a model whose depth tokenizer takes model-form depth (the world model's)",
         r"this tokenizer takes float feature maps \(C, H, W\) in its model's form, not image pixels \(got a uint16 "
         r"\(64, 64\) array, as an image file reads\); give it its input as a \.npy array",
         argv=lambda w, u: ["generate", "--model", w.model, "--input",
                            f"tok_depth={w.data / 'depth' / 'scene_00000000.png'}", "--target", "rgb", "--out", "out"]),
    Case("mismatch-vocab", AREA, "a tokenizer with another vocabulary size",
         r"tok_rgb\.safetensors has 512 tokens but the model's tok_depth@64 vocabulary has 256; use the tokenizer",
         argv=lambda w, u: _generate(w, "--tokenizers", f"depth={w.model / 'tokenizers' / 'tok_rgb.safetensors'}")),
    Case("mismatch-swapped-eval", AREA, "a bundle whose depth and normal tokenizer files are swapped (eval)",
         r"swapped/tokenizers/tok_depth\.safetensors was given for the model's tok_depth@64 but it is the normal "
         r"tokenizer \(its metadata says so\), not a depth one \(swapped tokenizer files\?\); give tok_depth@64 the "
         r"depth tokenizer",
         setup=_swapped,
         argv=lambda w, u: ["eval", "--model", "swapped", "--data", w.data, "--limit", "2", "--tasks", "depth,normal"],
         process=True),
    Case("mismatch-swapped-generate", AREA, "a bundle whose depth and normal tokenizer files are swapped (generate)",
         r"it is the normal tokenizer \(its metadata says so\), not a depth one",
         setup=_swapped,
         argv=lambda w, u: ["generate", "--model", "swapped", "--input", f"rgb={w.photo}", "--target", "depth",
                            "--out", "out"]),
    Case("mismatch-swapped-demo", AREA, "a bundle whose depth and normal tokenizer files are swapped (demo)",
         r"it is the normal tokenizer \(its metadata says so\), not a depth one",
         setup=_swapped,
         argv=lambda w, u: ["demo", "--model", "swapped", "--scenes", "1", "--out", "out"]),
    Case("mismatch-tokenizer-modality", AREA, "the normal tokenizer given for depth (--tokenizers depth=...)",
         r"tok_normal\.safetensors was given for the model's tok_depth@64 but it is the normal tokenizer",
         argv=lambda w, u: _generate(w, "--tokenizers", f"depth={w.model / 'tokenizers' / 'tok_normal.safetensors'}")),
    Case("mismatch-tokenizer-channels", AREA, "a 3-channel tokenizer that names no modality, given for depth",
         r"tok\.safetensors was given for the model's tok_depth@64 but it tokenizes 3-channel images and depth "
         r"data are 1-channel images",
         setup=_depth_tokenizer_variant(modality=None, n_channels=3),
         argv=lambda w, u: _generate(w, "--tokenizers", "depth=tok.safetensors")),
    Case("mismatch-tokenizer-image-size", AREA, "a depth tokenizer trained at another image size (32 px)",
         r"tok\.safetensors was trained on 32 px images but the model's tok_depth@64 works at 64 px; give "
         r"tok_depth@64 the depth tokenizer",
         setup=_depth_tokenizer_variant(image_size=32),
         argv=lambda w, u: _generate(w, "--tokenizers", "depth=tok.safetensors")),
    Case("mismatch-tokenizer-grid", AREA, "a depth tokenizer with another patch size (another token grid)",
         r"tok\.safetensors cuts a 64 px image into 4x4 tokens \(patch 16\) but the model's tok_depth@64 is a 8x8 "
         r"grid \(patch 8\)",
         setup=_depth_tokenizer_variant(patch_size=16),
         argv=lambda w, u: _generate(w, "--tokenizers", "depth=tok.safetensors")),
    Case("mismatch-rgb-as-depth", AREA, "an RGB photo given as the depth condition (--input tok_depth=PHOTO)",
         r"the depth tokenizer takes 1-channel images but got a colour image \(3 channels\); give it depth",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"tok_depth={w.photo}", "--target", "normal",
                            "--out", "out"]),
    Case("mismatch-library-rgb-to-depth", AREA, "an RGB image encoded with the 1-channel depth tokenizer",
         r"the depth tokenizer takes 1-channel images but got a colour image",
         call=rgb_to_the_depth_tokenizer),
    Case("mismatch-tokenize-modality", AREA, "the depth tokenizer given for RGB images (tokenize)",
         r"--tokenizer .*tok_depth\.safetensors cannot tokenize --modality rgb: it is the depth tokenizer \(its "
         r"metadata says so\), not a rgb one; give the rgb tokenizer",
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_depth.safetensors", "--out-name", "tok_test"]),
    Case("mismatch-tokenize-channels", AREA, "a 3-channel tokenizer given for depth maps (tokenize)",
         r"cannot tokenize --modality depth: it tokenizes 3-channel images and depth data are 1-channel images",
         setup=_depth_tokenizer_variant(modality=None, n_channels=3),
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "depth", "--tokenizer", "tok.safetensors",
                            "--out-name", "tok_test"]),
    # -- modalities the model was not trained on --------------------------------------------------------------
    Case("mismatch-target-unknown-to-model", AREA, "a target the model was not trained on (human_poses)",
         r"the model does not know 'human_poses'.*it has rgb@64",
         argv=lambda w, u: _generate(w, target="human_poses")),
    Case("mismatch-input-unknown-to-model", AREA, "a condition the model was not trained on (caption)",
         r"the model does not know 'caption' \(for 'caption' use 'world_caption'\)",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "caption=a red cube", "--target", "depth",
                            "--out", "out"]),
    Case("mismatch-index-target", AREA, "an index target the model does not predict (tok_dinov2_global)",
         r"the model does not know 'tok_dinov2_global'.*it has",
         argv=lambda w, u: ["index", "--model", w.model, "--images", w.data / "rgb", "--out", "gallery.index"]),
    Case("mismatch-retrieve-target", AREA, "a retrieval model that predicts no global embedding",
         r"the model does not know 'tok_dinov2_global'",
         setup=_gallery(3),
         argv=lambda w, u: ["retrieve", "--model", w.model, "--index", "gallery.index", "--input", f"rgb={w.photo}"]),
    # -- empty inputs ------------------------------------------------------------------------------------------
    Case("empty-caption", EMPTY, "an empty caption (--input world_caption=)",
         r"--input world_caption='': the text is empty; write the world_caption text, or leave this condition out",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "world_caption=", "--target", "rgb",
                            "--out", "out"]),
    Case("empty-caption-blank", EMPTY, "a caption of spaces only",
         r"the text is empty",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "world_caption=   ", "--target", "rgb",
                            "--out", "out"]),
    Case("empty-conditions", EMPTY, "no condition at all (generate without --input)",
         r"no condition: give at least one input .*--input NAME=VALUE",
         argv=lambda w, u: ["generate", "--model", w.model, "--target", "depth", "--out", "out"]),
    Case("empty-conditions-library", EMPTY, "an empty condition set in a generation request",
         r"no condition: give at least one input",
         call=no_condition),
    Case("empty-targets", EMPTY, "no target (generate --target ,)",
         r"no target: name at least one modality to generate",
         argv=lambda w, u: _generate(w, target=",")),
    Case("empty-target-is-input", EMPTY, "a target that is also a condition (tok_depth in and out)",
         r"\['tok_depth@64'\] are both given and generated; a modality is either a condition or a target",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "tok_depth=depth.npy", "--target", "depth",
                            "--out", "out"]),
    Case("empty-input-twice", EMPTY, "the same condition given twice (--input rgb=... twice)",
         r"--input rgb= is given twice; give each condition once",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--input", f"rgb={w.photo}",
                            "--target", "depth", "--out", "out"]),
    Case("empty-input-two-names", EMPTY, "the same condition under two names (rgb and rgb@64)",
         r"'rgb' and 'rgb@64' both give the condition rgb@64; give each condition once",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--input",
                            f"rgb@64={w.photo}", "--target", "depth", "--out", "out"]),
    Case("empty-det-text", EMPTY, "a box condition that is not box text (--input world_det=a cube)",
         r"--input world_det='a cube' is not det text .*e\.g\. 'v0=100 v1=200 v2=600 v3=900 car'",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "world_det=a cube", "--target", "rgb",
                            "--out", "out"]),
    Case("empty-palette-text", EMPTY, "a palette condition that is not palette text (--input world_palette=red)",
         r"--input world_palette='red' is not color_palette text",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "world_palette=red", "--target", "rgb",
                            "--out", "out"]),
    Case("empty-metadata-text", EMPTY, "a metadata condition that is not metadata text",
         r"--input world_metadata='bright' is not metadata text",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "world_metadata=bright", "--target", "rgb",
                            "--out", "out"]),
    Case("empty-eval-folder", EMPTY, "an empty data folder (eval --data empty)",
         r"empty holds no modality folders \(expected root/<modality>/<sample>\.<ext>\)",
         setup=_folder("empty"),
         argv=lambda w, u: ["eval", "--model", w.model, "--data", "empty", "--limit", "2"]),
    Case("empty-label-folder", EMPTY, "an empty data folder (label)",
         r"needs the 'rgb' modality, which has no folder empty/rgb/; add one file per sample",
         setup=_folder("empty"),
         argv=lambda w, u: ["label", "--data", "empty", "-m", "canny_edge"]),
    Case("empty-tokenize-folder", EMPTY, "an empty data folder (tokenize)",
         r"empty: no folder for modalities \['rgb'\]; found \[\] \(a dataset holds root/<modality>/",
         setup=_folder("empty"),
         argv=lambda w, u: ["tokenize", "--data", "empty", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("empty-train-tokenizer-folder", EMPTY, "an empty data folder (train-tokenizer)",
         r"no image or \.npy files under empty; point the data path \(--data\) at the folder",
         setup=_folder("empty"),
         argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", "empty", "--out", "out", "--steps", "1"]),
    Case("empty-text-tokenizer-folder", EMPTY, "a folder without .txt files (train-tokenizer --kind text)",
         r"--data notes: no \.txt files there; give a \.txt file or a folder of \.txt files",
         setup=_folder("notes", ["a.md"]),
         argv=lambda w, u: ["train-tokenizer", "--kind", "text", "--data", "notes", "--out", "out"]),
    Case("empty-convert-folder", EMPTY, "an empty data folder (convert)",
         r"empty holds no modality folders \(expected root/<modality>/<sample>\.<ext>\)",
         setup=_folder("empty"),
         argv=lambda w, u: ["convert", "--src", "empty", "--dst", "out"]),
    Case("empty-show-folder", EMPTY, "an empty data folder (show)",
         r"empty holds no modality folders",
         setup=_folder("empty"),
         argv=lambda w, u: ["show", "--data", "empty", "--out", "sheet.png"]),
    Case("empty-index-folder", EMPTY, "a gallery folder without images (index)",
         r"--images texts holds no images \(\.png, \.jpg",
         setup=_folder("texts", ["a.txt"]),
         argv=lambda w, u: ["index", "--model", w.model, "--images", "texts", "--out", "gallery.index"]),
    Case("empty-gallery", EMPTY, "an empty gallery index (retrieve)",
         r"gallery\.index is an empty gallery index \(no images\); rebuild it with `open4m index --images DIR`",
         setup=_gallery(0),
         argv=lambda w, u: ["retrieve", "--model", w.model, "--index", "gallery.index", "--input", f"rgb={w.photo}"]),
    Case("empty-gallery-library", EMPTY, "a gallery index built from no images",
         r"a gallery index of no images: there is nothing to rank; build it with `open4m index",
         call=an_empty_gallery),
    Case("empty-query", EMPTY, "a query without any --input (retrieve)",
         r"give the query with --input NAME=VALUE",
         setup=_gallery(3),
         argv=lambda w, u: ["retrieve", "--model", w.model, "--index", "gallery.index"]),
    Case("empty-tasks", EMPTY, "no task named (eval --tasks ,)",
         r"no task named; choose from depth, normal",
         argv=lambda w, u: ["eval", "--model", w.model, "--data", w.data, "--tasks", ","]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)


# -- what must keep working ------------------------------------------------------------------------------------
def test_tokenizers_that_name_no_modality_or_a_variant_pass(world):
    """Released tokenizers declare no modality; a variant of the data (semseg / semseg_coco) or another edge
    map is the same kind of data; only a tokenizer naming another kind, or of the wrong channels, is refused."""
    from dataclasses import replace

    from open4m.tokenizers import VQVAE, load_tokenizer
    from open4m.tokenizers.resolver import data_mismatch

    depth = load_tokenizer(world.model / "tokenizers" / "tok_depth.safetensors")
    edges = load_tokenizer(world.model / "tokenizers" / "tok_canny_edge.safetensors")
    anonymous = VQVAE(replace(depth.config, modality=None))
    assert data_mismatch(anonymous, "depth") is None and data_mismatch(anonymous, "my_own_maps") is None
    assert data_mismatch(edges, "sam_edge") is None and data_mismatch(edges, "hed_edge") is None
    assert data_mismatch(depth, "normal", rivals=["normal"]).startswith("it is the depth tokenizer")
    assert data_mismatch(anonymous, "normal") == "it tokenizes 1-channel images and normal data are 3-channel images"


def test_one_channel_images_still_reach_one_channel_tokenizers(world):
    """A grey edge map (PIL 'L' or an (H, W) array) is what the edge tokenizer takes: no channel error."""
    import numpy as np
    from PIL import Image

    from open4m.tokenizers import load_tokenizer

    edges = load_tokenizer(world.model / "tokenizers" / "tok_canny_edge.safetensors")
    grey = Image.open(world.photo).convert("L")
    assert tuple(edges.encode(grey).shape) == (1, 8, 8)
    assert tuple(edges.encode(np.array(grey)).shape) == (1, 8, 8)


def test_the_models_own_tokenizers_pass_every_check(world, tmp_path):
    """The shipped bundle's tokenizers match its config: every target decodes."""
    from open4m.cli import main

    out = tmp_path / "out"
    assert main(["-q", "generate", "--model", str(world.model), "--input", f"rgb={world.photo}", "--target",
                 "depth,normal", "--steps", "1", "--out", str(out)]) == 0
    assert {"tok_depth_64_0.png", "tok_normal_64_0.png"} <= {p.name for p in out.iterdir()}


def test_structured_condition_texts_in_their_codec_form_are_taken(world):
    from open4m.generation.request import checked_text

    assert checked_text("world_det", "v0=100 v1=200 v2=600 v3=900 car", "--input world_det=")
    assert checked_text("world_caption", "a red cube", "--input world_caption=") == "a red cube"
