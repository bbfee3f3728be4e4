"""Bad image files (text named .jpg, 0 bytes, truncated PNGs, folders named like images, arrays that
are not arrays, strips too far from square) as the battery's cases; then, as ordinary tests, the images
that must WORK (RGBA, grey, palette and 16-bit PNGs; 1x1 and extreme-aspect photos) through generate,
tokenize and label, and the corrupt sample among good ones, which every verb skips, counts and names in
its summary instead of stopping after the work was done."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from battery import Case, user_files
from gallery_model import GLOBAL, tiny_gallery_model
from open4m.cli import main

AREA = "Images"


def _gallery_model(world):
    """A tiny model that predicts a global embedding from 224 px RGB, with its tokenizer beside it (for `index`)."""
    model, tok = tiny_gallery_model()
    folder = world.root / "gallery_model"
    model.save_file(folder / "model.safetensors")
    tok.save_pretrained(folder / "tokenizers" / GLOBAL)
    return folder


def gallery_model(world):
    """The gallery model's folder, built once per session (registered with the world on first use)."""
    world.builders.setdefault("gallery_model", _gallery_model)
    return world.asset("gallery_model")


def _png_prefix(world):
    return world.photo.read_bytes()[:300]


def _strip(world):
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 900, 3), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _generate(value, target="depth"):
    return lambda w, u: ["generate", "--model", w.model, "--input", value, "--target", target, "--out", "out"]


def tiny_tokenizer_training(data, out="run"):
    """`open4m train-tokenizer` of a tiny VQ-VAE (about a second per step) on `data`, into `out`."""
    sets = {"image_size": 16, "n_channels": 3, "enc_type": "vit", "dec_type": "vit", "enc_dim": 16, "enc_depth": 1,
            "enc_heads": 1, "dec_dim": 16, "dec_depth": 1, "dec_heads": 1, "patch_size": 8, "codebook_size": 16,
            "latent_dim": 4}
    args = ["train-tokenizer", "--kind", "vqvae", "--data", data, "--out", out, "--steps", "2", "--batch-size", "2",
            "--device", "cpu", "--set", "optim.warmup=0"]
    for key, value in sets.items():
        args += ["--set", f"model.{key}={value}"]
    return args


def _pipeline(world):
    import open4m

    return open4m.pipeline("rgb->depth", model=world.model, steps=1)


def float_array_photo(world, user):
    """pipeline("rgb->depth", model=MODEL)(np.asarray(PIL.Image.open(PHOTO)) / 255.0)"""
    _pipeline(world)(np.asarray(Image.open(world.photo)) / 255.0)


def channels_first_array_photo(world, user):
    """pipeline("rgb->depth", model=MODEL)(np.asarray(PIL.Image.open(PHOTO)).transpose(2, 0, 1))"""
    _pipeline(world)(np.asarray(Image.open(world.photo)).transpose(2, 0, 1))


def nan_pixels(world, user):
    """pipeline("rgb->depth", model=MODEL)(torch.full((3, 64, 64), float("nan")))"""
    _pipeline(world)(torch.full((3, 64, 64), float("nan")))


def uint8_tensor_pixels(world, user):
    """pipeline("rgb->depth", model=MODEL)(torch.from_numpy(np.asarray(PIL.Image.open(PHOTO))).permute(2, 0, 1))"""
    _pipeline(world)(torch.from_numpy(np.asarray(Image.open(world.photo)).copy()).permute(2, 0, 1))


def channels_last_tensor_pixels(world, user):
    """pipeline("rgb->depth", model=MODEL)(torch.zeros(1, 64, 64, 3))"""
    _pipeline(world)(torch.zeros(1, 64, 64, 3))


def grey_tensor_pixels(world, user):
    """pipeline("rgb->depth", model=MODEL)(torch.zeros(1, 1, 64, 64))"""
    _pipeline(world)(torch.zeros(1, 1, 64, 64))


CASES = [
    Case("image-text-named-jpg", AREA, "a text file named photo.jpg (generate --input rgb=)",
         r"--input rgb@64=photo\.jpg: not an image file PIL can read \(png, jpg, webp, \.\.\.\)",
         setup=user_files(**{"photo.jpg": "a photo of a cat"}), argv=_generate("rgb=photo.jpg"), process=True),
    Case("image-empty", AREA, "a photo of 0 bytes (generate --input rgb=)",
         r"--input rgb@64=photo\.png: not an image file PIL can read",
         setup=user_files(**{"photo.png": b""}), argv=_generate("rgb=photo.png")),
    Case("image-truncated", AREA, "a PNG cut short (generate --input rgb=)",
         r"--input rgb@64=photo\.png: the image file is damaged \(.*truncated\); save or download it again",
         setup=user_files(**{"photo.png": _png_prefix}), argv=_generate("rgb=photo.png")),
    Case("image-folder", AREA, "a folder named photo.png given as the photo",
         r"--input rgb@64=photo\.png is a folder; give an image file",
         setup=user_files(**{"photo.png": None}), argv=_generate("rgb=photo.png")),
    Case("image-strip", AREA, "a 900x4 strip as the RGB condition (generate)",
         r"rgb@64: a 900x4 image is too far from square \(over 8:1\) to squeeze into the model's square input; crop",
         setup=user_files(**{"strip.png": _strip}), argv=_generate("rgb=strip.png")),
    Case("image-depth-not-image", AREA, "a text file as a depth condition (--input tok_depth=depth.png)",
         r"--input tok_depth@64=depth\.png: not an image file PIL can read",
         setup=user_files(**{"depth.png": "0.5 0.7"}), argv=_generate("tok_depth=depth.png", target="normal")),
    Case("image-npy-empty", AREA, "a depth condition .npy of 0 bytes",
         r"--input tok_depth@64=depth\.npy: not a plain NumPy array file \(.*\); write it with numpy\.save",
         setup=user_files(**{"depth.npy": b""}), argv=_generate("tok_depth=depth.npy", target="normal")),
    Case("image-npy-text", AREA, "a depth condition .npy holding text",
         r"--input tok_depth@64=depth\.npy: not a plain NumPy array file \(.*\); write it with numpy\.save",
         setup=user_files(**{"depth.npy": "[[0.5, 0.7]]"}), argv=_generate("tok_depth=depth.npy", target="normal")),
    Case("image-gallery-all-unreadable", AREA, "a gallery folder whose every image is damaged (index)",
         r"--images gallery: none of its 2 images can be read \(e\.g\. --images: file gallery/a\.jpg: not an image .*\); "
         r"replace them, or point --images at a folder of good ones",
         setup=user_files(**{"gallery/a.jpg": "not a photo", "gallery/b.png": b""}),
         argv=lambda w, u: ["index", "--model", gallery_model(w) / "model.safetensors", "--tokenizers",
                            gallery_model(w) / "tokenizers", "--images", "gallery", "--out", "g.index"]),
    Case("image-tokenizer-data-all-unreadable", AREA, "tokenizer training files that are all damaged",
         r"no file under photos can be read \(e\.g\. photos/a\.jpg: not an image file PIL can read .*\); replace the "
         r"damaged files",
         setup=user_files(**{"photos/a.jpg": "text", "photos/b.npy": b""}),
         argv=lambda w, u: tiny_tokenizer_training("photos")),
    Case("image-tokenize-all-unreadable", AREA, "a dataset whose every rgb file is damaged (tokenize)",
         r"none of the rgb files under data can be read \(2 damaged, e\.g\. data/rgb/a\.png \(.*\)\); replace them",
         setup=user_files(**{"data/rgb/a.png": "text", "data/rgb/b.png": b""}),
         argv=lambda w, u: ["tokenize", "--data", "data", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("image-label-all-unreadable", AREA, "a photo folder whose every photo is damaged (label)",
         r"none of the 2 sample\(s\) under photos can be read \(e\.g\. photos/a\.jpg \(.*\)\); replace the damaged",
         setup=user_files(**{"photos/a.jpg": "text", "photos/b.png": _png_prefix}),
         argv=lambda w, u: ["label", "--data", "photos", "-m", "canny_edge"]),
    Case("image-array-float", AREA, "a float array of 0..1 values as the RGB condition (library)",
         r"rgb@64: a float64 array of shape \(64, 64, 3\) is not a uint8 \(H, W, 3\) image; convert it to uint8 pixels "
         r"in 0\.\.255 first", call=float_array_photo),
    Case("image-array-channels-first", AREA, "a channels-first (3, H, W) array as the RGB condition (library)",
         r"rgb@64: a uint8 array of shape \(3, 64, 64\) .* it looks channels-first: pass arr\.transpose\(1, 2, 0\)",
         call=channels_first_array_photo),
    Case("image-tensor-nan", AREA, "RGB pixels holding NaN (library)",
         r"rgb@64: the pixels hold NaN or infinite values; give finite normalised pixels", call=nan_pixels),
    Case("image-tensor-uint8", AREA, "a uint8 tensor of 0..255 pixels as the RGB condition (library)",
         r"rgb@64: a torch\.uint8 tensor is not normalised pixels; pass the image itself", call=uint8_tensor_pixels),
    Case("image-tensor-channels-last", AREA, "a channels-last (1, 64, 64, 3) pixel tensor (library)",
         r"expected pixels \(B, 3, 64, 64\), got \(1, 64, 64, 3\); it looks channels-last: pass "
         r"tensor\.permute\(0, 3, 1, 2\)", call=channels_last_tensor_pixels),
    Case("image-tensor-grey", AREA, "a 1-channel pixel tensor for the RGB condition (library)",
         r"expected pixels \(B, 3, 64, 64\), got \(1, 1, 64, 64\); give 3 channels", call=grey_tensor_pixels),
    Case("image-label-data-is-photo", AREA, "label --data naming one photo instead of a folder",
         r"--data photo\.png is a file; give the dataset folder \(DIR/rgb/\.\.\.\) or a folder of photos",
         setup=lambda w, u: shutil.copy(w.photo, u / "photo.png"),
         argv=lambda w, u: ["label", "--data", "photo.png", "-m", "canny_edge"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)


# -- images that must work ---------------------------------------------------------------------------
RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (40, 56, 3), dtype=np.uint8)


def _modes(folder):
    """The same photo as RGB, RGBA, grey, palette and 16-bit grey PNGs, plus 1x1 and extreme-aspect photos."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(PHOTO).save(folder / "rgb.png")
    Image.fromarray(PHOTO).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(PHOTO).convert("L").save(folder / "grey.png")
    Image.fromarray(PHOTO).convert("P").save(folder / "palette.png")
    grey16 = PHOTO[..., 0].astype(np.uint16) * 100 + 2000  # a 12-bit-like range: 2000..27500
    Image.fromarray(grey16).save(folder / "grey16.png")
    Image.fromarray(PHOTO[:1, :1]).save(folder / "one.png")
    Image.fromarray(RNG.integers(0, 256, (4, 300, 3), dtype=np.uint8)).save(folder / "wide.png")
    return grey16


def test_a_16_bit_photo_is_scaled_by_its_range_not_read_as_white(tmp_path):
    from open4m.data.codecs import decode, rgb_image

    grey16 = _modes(tmp_path)
    for rgb in (np.asarray(rgb_image(Image.open(tmp_path / "grey16.png"))),
                decode((tmp_path / "grey16.png").read_bytes(), ".png", "rgb")):
        assert rgb.shape == (40, 56, 3) and rgb.dtype == np.uint8
        assert rgb.min() == 0 and rgb.max() == 255  # its real range, 2000..27500, spread over 0..255
        expected = np.round((grey16 - 2000.0) * 255.0 / (grey16.max() - 2000.0)).astype(np.uint8)
        np.testing.assert_array_equal(rgb[..., 0], expected)
        assert (rgb == 255).mean() < 0.05  # not white
    flat = np.asarray(rgb_image(Image.fromarray(np.full((4, 4), 32768, np.uint16))))
    assert (flat == 128).all()  # one flat value keeps its level within 16 bits


def test_a_float_photo_is_scaled_by_its_range_not_clipped_to_black(tmp_path):
    """A 32-bit float TIFF in 0..1 (mode F): Pillow's own conversion clips it to 0 and 1, a black picture."""
    from open4m.data.codecs import rgb_image

    values = (PHOTO[..., 0] / 255.0).astype(np.float32)
    values[0, 0] = np.nan  # a hole in the file reads as its darkest value, not as garbage
    Image.fromarray(values).save(tmp_path / "float.tif")  # mode F
    rgb = np.asarray(rgb_image(Image.open(tmp_path / "float.tif")))
    assert rgb.shape == (*values.shape, 3) and rgb.dtype == np.uint8
    finite = values[np.isfinite(values)]
    expected = np.round((values - finite.min()) * 255.0 / (finite.max() - finite.min()))
    np.testing.assert_array_equal(rgb[1:, :, 0], expected[1:].astype(np.uint8))
    assert rgb[0, 0, 0] == 0 and rgb.max() == 255


@pytest.mark.parametrize("mode", ["rgba", "grey", "palette", "grey16"])
def test_generate_reads_rgba_grey_palette_and_16_bit_photos_as_their_rgb_pixels(world, tmp_path, mode):
    """A photo in any of these modes conditions generation exactly as its 8-bit RGB pixels do."""
    from open4m.data.codecs import rgb_image
    from safetensors.torch import load_file

    _modes(tmp_path / "in")
    rgb_image(Image.open(tmp_path / "in" / f"{mode}.png")).save(tmp_path / "in" / "as_rgb.png")
    outs = []
    for name in (f"{mode}.png", "as_rgb.png"):
        out = tmp_path / f"out_{name}"
        assert main(["-q", "generate", "--model", str(world.model), "--input", f"rgb={tmp_path / 'in' / name}",
                     "--target", "depth", "--steps", "2", "--out", str(out)]) == 0
        outs.append(load_file(str(out / "tokens.safetensors")))
    assert outs[0].keys() == outs[1].keys()
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key]), key


def test_generate_takes_a_1x1_photo_with_a_warning(world, tmp_path, recwarn):
    _modes(tmp_path / "in")
    assert main(["-q", "generate", "--model", str(world.model), "--input", f"rgb={tmp_path / 'in' / 'one.png'}",
                 "--target", "depth", "--steps", "1", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tokens.safetensors").is_file()
    assert any("1x1 resized to 64x64" in str(w.message) for w in recwarn)


def test_tokenize_reads_every_photo_mode_and_size(world, tmp_path, capsys):
    """RGBA, grey, palette, 16-bit, 1x1 and 300x4 photos are all tokenized (the centre square of each); an RGBA
    photo gets the tokens of its RGB pixels."""
    _modes(tmp_path / "data" / "rgb")
    assert main(["-q", "tokenize", "--data", str(tmp_path / "data"), "--modality", "rgb", "--tokenizer",
                 str(world.model / "tokenizers" / "tok_rgb.safetensors")]) == 0
    assert "wrote 7 token files" in capsys.readouterr().out
    tokens = {p.stem: np.load(p) for p in (tmp_path / "data" / "tok_rgb").iterdir()}
    assert sorted(tokens) == ["grey", "grey16", "one", "palette", "rgb", "rgba", "wide"]
    assert all(t.shape == tokens["rgb"].shape for t in tokens.values())
    np.testing.assert_array_equal(tokens["rgba"], tokens["rgb"])


def test_label_reads_every_photo_mode_and_size(tmp_path, capsys):
    """Edges and palettes of RGBA, grey, palette, 16-bit, 1x1 and 300x4 photos, each at the photo's own size."""
    _modes(tmp_path / "photos")
    assert main(["-q", "label", "--data", str(tmp_path / "photos"), "-m", "canny_edge", "color_palette"]) == 0
    out = capsys.readouterr().out
    assert "canny_edge: 7 labeled" in out and "color_palette: 7 labeled" in out
    sizes = {p.stem: Image.open(p).size for p in (tmp_path / "photos" / "canny_edge").iterdir()}
    assert sizes["one"] == (1, 1) and sizes["wide"] == (300, 4) and sizes["grey16"] == (56, 40)
    palette16 = (tmp_path / "photos" / "color_palette" / "grey16.json").read_text()
    colours = [int(c) for c in palette16.replace("[", " ").replace("]", " ").replace(",", " ").split() if c.isdigit()]
    assert colours and not all(c == 255 for c in colours)  # the 16-bit photo was not read as white


# -- a corrupt sample among good ones: skipped, counted, named ----------------------------------------
def _dataset_with_a_corrupt_photo(world, root):
    for m in ("rgb", "depth", "det"):
        shutil.copytree(world.data / m, root / m)
    bad = root / "rgb" / "scene_00000001.png"
    bad.write_bytes(bad.read_bytes()[:300])  # a truncated PNG
    return bad


def test_tokenize_skips_counts_and_names_a_corrupt_photo(world, tmp_path, capsys):
    bad = _dataset_with_a_corrupt_photo(world, tmp_path / "data")
    assert main(["-q", "tokenize", "--data", str(tmp_path / "data"), "--modality", "rgb", "--tokenizer",
                 str(world.model / "tokenizers" / "tok_rgb.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 token files" in out and f"skipped 1 corrupt file(s): {bad} (" in out
    assert sorted(p.stem for p in (tmp_path / "data" / "tok_rgb").iterdir()) == ["scene_00000000", "scene_00000002"]


def test_tokenize_of_shards_skips_a_damaged_sample_and_a_truncated_shard(world, tmp_path, capsys):
    import io
    import tarfile

    assert main(["-q", "convert", "--src", str(world.data), "--dst", str(tmp_path / "sh"), "--modalities", "rgb",
                 "depth"]) == 0
    tar = tmp_path / "sh" / "rgb" / "shard-00000.tar"
    buf = io.BytesIO()
    with tarfile.open(tar) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for i, member in enumerate(src.getmembers()):
            data = b"garbage" if i == 1 else src.extractfile(member).read()
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    tar.write_bytes(buf.getvalue())
    capsys.readouterr()
    assert main(["-q", "tokenize", "--data", str(tmp_path / "sh"), "--modality", "rgb", "--tokenizer",
                 str(world.model / "tokenizers" / "tok_rgb.safetensors")]) == 0
    assert f"skipped 1 corrupt file(s): {tar}:scene_00000001.png (" in capsys.readouterr().out
    with tarfile.open(tmp_path / "sh" / "tok_rgb" / "shard-00000.tar") as written:
        assert sorted(written.getnames()) == ["scene_00000000.npy", "scene_00000002.npy"]
    (tmp_path / "sh" / "depth" / "shard-00000.tar").write_bytes(b"")  # an empty shard of another modality
    shutil.rmtree(tmp_path / "sh" / "tok_rgb")
    assert main(["-q", "tokenize", "--data", str(tmp_path / "sh"), "--modality", "depth", "--tokenizer",
                 str(world.model / "tokenizers" / "tok_depth.safetensors")]) == 2


def test_convert_skips_and_names_a_corrupt_file_both_ways(world, tmp_path, capsys):
    bad = _dataset_with_a_corrupt_photo(world, tmp_path / "data")
    assert main(["-q", "convert", "--src", str(tmp_path / "data"), "--dst", str(tmp_path / "sh")]) == 0
    out = capsys.readouterr().out
    assert "wrote 3 samples" in out and f"skipped 1 corrupt file(s): {bad} (" in out
    tar = tmp_path / "sh" / "rgb" / "shard-00000.tar"
    tar.write_bytes(tar.read_bytes()[:1500])  # cut inside its first member
    assert main(["-q", "convert", "--src", str(tmp_path / "sh"), "--dst", str(tmp_path / "back")]) == 0
    out = capsys.readouterr().out
    assert f"skipped 1 unreadable file(s): {tar}: " in out
    assert sorted(p.name for p in (tmp_path / "back" / "depth").iterdir()) == [
        "scene_00000000.png", "scene_00000001.png", "scene_00000002.png"]


def test_label_skips_counts_and_names_a_corrupt_photo(world, tmp_path, capsys):
    bad = _dataset_with_a_corrupt_photo(world, tmp_path / "data")
    assert main(["-q", "label", "--data", str(tmp_path / "data"), "-m", "canny_edge"]) == 0
    out = capsys.readouterr().out
    assert "2 labeled, 0 already present, 1 corrupt" in out and f"{bad} (" in out


def test_show_names_the_corrupt_file_it_left_out(world, tmp_path, capsys):
    bad = _dataset_with_a_corrupt_photo(world, tmp_path / "data")
    with pytest.warns(UserWarning, match="skipping corrupt file"):
        assert main(["-q", "show", "--data", str(tmp_path / "data"), "--index", "1",
                     "--out", str(tmp_path / "sheet.png")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "rgb" not in out.split("(")[1].split(")")[0]
    assert f"skipped 1 corrupt file(s), not shown: {bad} (" in out


def test_eval_scores_the_good_samples_and_logs_the_corrupt_file(world, tmp_path, capsys):
    bad = _dataset_with_a_corrupt_photo(world, tmp_path / "data")
    with pytest.warns(UserWarning, match="skipping corrupt file"):
        assert main(["eval", "--model", str(world.model), "--data", str(tmp_path / "data"), "--limit", "3",
                     "--tasks", "depth", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "eval: skipped 1 corrupt file(s): " in err and str(bad) in err
    assert "depth scored on the 2 of 3 samples" in err


def test_tokenizer_training_skips_counts_and_names_a_corrupt_image(world, tmp_path, capsys):
    """The issue's case: training a tokenizer on a folder with one damaged photo trains on the others."""
    photos = tmp_path / "photos"
    shutil.copytree(world.data / "rgb", photos)
    bad = photos / "scene_00000001.png"
    bad.write_text("not a photo")
    (photos / "extra.npy").write_bytes(b"")
    args = tiny_tokenizer_training(str(photos), str(tmp_path / "run"))
    assert main(["-q", *args]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 unreadable file(s): " in out and str(bad) in out
    assert (tmp_path / "run" / "tokenizer").is_dir()


def test_tokenizer_training_on_a_folder_of_damaged_files_writes_nothing(tmp_path, capsys):
    """Refused before the run folder is made: no config.yaml or metrics.jsonl of a run that never trained."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_text("text")
    (photos / "b.npy").write_bytes(b"")
    assert main(["-q", *tiny_tokenizer_training(str(photos), str(tmp_path / "run"))]) != 0
    assert "no file under" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_index_leaves_out_and_names_an_unreadable_image(world, tmp_path, capsys):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for i in range(2):
        Image.fromarray(RNG.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(gallery / f"img{i}.png")
    (gallery / "broken.jpg").write_text("not a photo")
    folder = gallery_model(world)
    assert main(["-q", "index", "--model", str(folder / "model.safetensors"), "--tokenizers", str(folder / "tokenizers"),
                 "--images", str(gallery), "--out", str(tmp_path / "g.index")]) == 0
    out = capsys.readouterr().out
    assert "indexed 2 images" in out and "skipped 1 unreadable image(s), not indexed: " in out and "broken.jpg" in out
    from open4m.generation.retrieval import GalleryIndex

    assert GalleryIndex.load(tmp_path / "g.index").keys == ["img0.png", "img1.png"]


def test_classification_data_skips_a_corrupt_image_for_the_next_good_one(tmp_path, caplog):
    """Fine-tuning on class folders: a damaged photo is logged and replaced, every image unreadable is an error."""
    import logging

    from open4m.errors import DataError
    from open4m.sources.labelled import ImageFolderSource

    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.fromarray(PHOTO).save(tmp_path / name / "a.png")
    (tmp_path / "cat" / "b.jpg").write_text("not a photo")
    source = ImageFolderSource(tmp_path)
    with caplog.at_level(logging.WARNING, logger="open4m.sources.labelled"):
        labels = [source[i]["label"] for i in range(len(source))]
    assert labels == [0, 1, 1] and list(source.corrupt) == [tmp_path / "cat" / "b.jpg"]
    assert f"skipping corrupt image {tmp_path / 'cat' / 'b.jpg'}" in caplog.text
    for path in tmp_path.rglob("a.png"):
        path.write_bytes(b"")
    with pytest.raises(DataError, match="no image under .* can be read"):
        ImageFolderSource(tmp_path)[0]
