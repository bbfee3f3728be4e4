import numpy as np
import pytest
import torch
from PIL import Image

from open4m.cli import main
from open4m.tokenizers import VQVAE
from open4m.data.pretokenize import pretokenize, sample_crops


def make_dataset(root, n=3, size=80):
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / "rgb" / "part").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size + 16, 3), dtype=np.uint8)).save(root / "rgb" / "part" / f"{i}.png")
        (root / "semseg_coco" / "part").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 134, (size, size + 16), dtype=np.uint8)).save(root / "semseg_coco" / "part" / f"{i}.png")


def test_sample_crops_row_zero_is_the_centre_square():
    crops = sample_crops(80, 96, 4, np.random.default_rng(0))
    assert crops.shape == (4, 5) and crops[0].tolist() == [0, 8, 80, 80, 0]
    assert ((crops[:, 0] + crops[:, 2] <= 80) & (crops[:, 1] + crops[:, 3] <= 96)).all()


def test_pretokenize_writes_aligned_tokens_and_resumes(tmp_path, reference_dir):
    make_dataset(tmp_path)
    rgb = VQVAE.from_pretrained(reference_dir / "vqvae_rgb_tiny.safetensors")
    report = pretokenize(tmp_path, "rgb", rgb, n_crops=3, batch_size=4, progress=False)
    assert report.written == 3
    tokens = np.load(tmp_path / "tok_rgb" / "part" / "0.npy")
    assert tokens.shape == (3, 16) and tokens.dtype == np.int16
    # Row 0 = centre crop resized to the tokenizer's 64 px, normalised to [-1, 1].
    img = np.array(Image.open(tmp_path / "rgb" / "part" / "0.png"))[:, 8:88]
    x = torch.nn.functional.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, size=(64, 64),
                                        mode="bicubic", align_corners=False, antialias=True)
    assert np.array_equal(rgb.encode((x - 0.5) / 0.5).reshape(-1).numpy(), tokens[0])
    assert pretokenize(tmp_path, "rgb", rgb, n_crops=3, progress=False).skipped == 3
    crops = np.load(tmp_path / "crop_settings" / "part" / "0.npy")
    seg = VQVAE.from_pretrained(reference_dir / "vqvae_semseg_tiny.safetensors")
    pretokenize(tmp_path, "semseg_coco", seg, n_crops=3, progress=False)
    assert np.array_equal(np.load(tmp_path / "crop_settings" / "part" / "0.npy"), crops)  # shared, not redrawn
    assert np.load(tmp_path / "tok_semseg_coco" / "part" / "2.npy").shape == (3, 16)


def test_tokenize_cli(tmp_path, reference_dir, capsys):
    make_dataset(tmp_path, n=2)
    assert main(["tokenize", "--data", str(tmp_path), "--modality", "rgb", "--device", "cpu",
                 "--tokenizer", str(reference_dir / "vqvae_rgb_tiny.safetensors")]) == 0
    assert "wrote 2 token files" in capsys.readouterr().out
    assert main(["tokenize", "--data", str(tmp_path), "--modality", "depth",
                 "--tokenizer", str(reference_dir / "vqvae_rgb_tiny.safetensors")]) == 2


def test_pretokenize_shards_matches_folders_and_streams(tmp_path, reference_dir):
    from open4m.data.formats import ShardDataset, folder_to_shards

    make_dataset(tmp_path / "folder")
    folder_to_shards(tmp_path / "folder", tmp_path / "shards", samples_per_shard=2, progress=False)
    rgb = VQVAE.from_pretrained(reference_dir / "vqvae_rgb_tiny.safetensors")
    pretokenize(tmp_path / "folder", "rgb", rgb, n_crops=2, progress=False)
    report = pretokenize(tmp_path / "shards", "rgb", rgb, n_crops=2, progress=False)
    assert report.written == 2 and (tmp_path / "shards" / "tok_rgb" / "shard-00001.tar").exists()
    assert pretokenize(tmp_path / "shards", "rgb", rgb, n_crops=2, progress=False).skipped == 2
    samples = list(ShardDataset(str(tmp_path / "shards"), ["rgb", "tok_rgb"]))
    assert len(samples) == 3
    for s in samples:
        assert np.array_equal(s["tok_rgb"], np.load(tmp_path / "folder" / "tok_rgb" / f"{s['__key__']}.npy"))


def _text_tokenizer():
    from open4m.tokenizers import TextTokenizer

    return TextTokenizer.train(["a cat on a mat", "two dogs"] * 5, vocab_size=4400)


def _write_json(path, value):
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_sequences_are_tokenized_per_crop_with_the_image_crops(tmp_path, reference_dir):
    """det boxes follow each stored crop; captions repeat; palettes draw a size per row; reruns skip."""
    from open4m.tokenizers.sequences import CODECS

    make_dataset(tmp_path, n=2)
    text = _text_tokenizer()
    rgb = VQVAE.from_pretrained(reference_dir / "vqvae_rgb_tiny.safetensors")
    pretokenize(tmp_path, "rgb", rgb, n_crops=3, progress=False)
    box = {"boxes": [0.1, 0.2, 0.5, 0.6], "class_name": "dog", "score": 0.9}
    palettes = [{str(k): [[10 * k, 0, 0]] * k for k in range(1, 8)}]
    for i in range(2):
        _write_json(tmp_path / "det" / "part" / f"{i}.json", {"instances": [box]})
        _write_json(tmp_path / "color_palette" / "part" / f"{i}.json", palettes)
        (tmp_path / "caption" / "part").mkdir(parents=True, exist_ok=True)
        (tmp_path / "caption" / "part" / f"{i}.txt").write_text(f"a  cat\ton mat {'two' if i else 'dogs'}")
    assert pretokenize(tmp_path, "det", text, n_crops=3, progress=False).written == 2
    det = np.load(tmp_path / "tok_det" / "part" / "0.npy")
    crops = np.load(tmp_path / "crop_settings" / "part" / "0.npy")
    assert det.shape[0] == 3 and det.dtype == np.int16
    from open4m.data.transforms import Crop, crop_boxes

    for k in range(3):
        want = crop_boxes({"instances": [box]}, Crop.from_row(crops[k]), 80, 96)["instances"]
        got = CODECS["det"].decode(det[k], text)
        assert len(got) == len(want) == 1
        assert np.allclose([got[0].xmin, got[0].ymin, got[0].xmax, got[0].ymax], want[0]["boxes"], atol=1e-3)
    pretokenize(tmp_path, "caption", text, n_crops=3, progress=False)
    caption = np.load(tmp_path / "tok_caption" / "part" / "1.npy")
    assert (caption == caption[0]).all() and text.decode(caption[0]) == "a cat on mat two"
    pretokenize(tmp_path, "color_palette", text, n_crops=3, seed=5, progress=False)
    rows = np.load(tmp_path / "tok_color_palette" / "part" / "0.npy")
    sizes = [len(CODECS["color_palette"].decode(r, text)) for r in rows]
    assert all(1 <= s <= 7 for s in sizes)
    assert pretokenize(tmp_path, "det", text, n_crops=3, progress=False).skipped == 2


def test_sequences_without_an_image_and_wrong_tokenizers(tmp_path, reference_dir):
    text = _text_tokenizer()
    _write_json(tmp_path / "det" / "a.json", {"instances": [{"boxes": [0, 0, 1, 1], "class_name": "cat"}]})
    assert pretokenize(tmp_path, "det", text, progress=False).written == 1  # nothing to crop: the boxes as stored
    assert np.load(tmp_path / "tok_det" / "a.npy").shape[0] == 1
    with pytest.raises(ValueError, match="need the sample's image"):
        pretokenize(tmp_path, "det", text, out_name="tok_det2", n_crops=2, progress=False)
    rgb = VQVAE.from_pretrained(reference_dir / "vqvae_rgb_tiny.safetensors")
    with pytest.raises(ValueError, match="text tokenizer"):
        pretokenize(tmp_path, "det", rgb, progress=False)
    with pytest.raises(ValueError, match="image/vector tokenizer"):
        pretokenize(tmp_path, "rgb", text, progress=False)


def test_sam_masks_are_cut_to_their_box_not_to_the_photo_crop(tmp_path):
    from open4m.tokenizers.presets import official_config
    from open4m.train.tasks.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer(*official_config("sam_mask", "tiny")).eval()
    mask = np.zeros((50, 70), bool)
    mask[10:30, 5:45] = True
    (tmp_path / "sam_mask").mkdir()
    Image.fromarray(mask).save(tmp_path / "sam_mask" / "m.png")  # a 1-bit PNG, as SAM tools write them
    Image.fromarray(mask[10:30, 5:45]).save(tmp_path / "sam_mask" / "cut.png")
    assert pretokenize(tmp_path, "sam_mask", tok, progress=False).written == 2
    full, cut = (np.load(tmp_path / "tok_sam_mask" / f"{k}.npy") for k in ("m", "cut"))
    assert full.shape == (1, 16) and np.array_equal(full, cut)  # the same instance, wherever it sits
    with pytest.raises(ValueError, match="n_crops=1"):
        pretokenize(tmp_path, "sam_mask", tok, out_name="x", n_crops=2, progress=False)


def test_normal_files_tokenized_by_a_feature_tokenizer_match_the_world_model_form(tmp_path):
    """The world model's normal tokenizer takes unit normals (3, H, W): normal PNGs (decoded (H, W, 3)) were handed
    to it channels-last, an error after the whole progress bar ("expects input (B, 3, H, W), got (3, 64, 64, 3)")."""
    from open4m.data.codecs import decode
    from open4m.data.synthetic.world import to_model_form
    from open4m.sources.world import SHIPPED
    from open4m.tokenizers import load_tokenizer

    assert main(["-q", "synth", "--out", str(tmp_path / "w"), "--n", "2", "--size", "64"]) == 0
    tok = load_tokenizer(SHIPPED / "tokenizers" / "tok_normal.safetensors")
    assert tok.preprocessor.input == "features"
    assert pretokenize(tmp_path / "w", "normal", tok, progress=False).written == 2
    for key in ("scene_00000000", "scene_00000001"):
        normal = decode((tmp_path / "w" / "normal" / f"{key}.png").read_bytes(), ".png", "normal")
        with torch.no_grad():
            expected = tok.encode(to_model_form("normal", normal)[None]).reshape(-1).numpy()
        np.testing.assert_array_equal(np.load(tmp_path / "w" / "tok_normal" / f"{key}.npy").reshape(-1), expected)



def test_depth_files_with_several_crops_through_a_feature_tokenizer_get_the_real_refusal(tmp_path):
    """`--n-crops 2` with the world model's depth tokenizer (model-form depth, not depth files) said 'use n_crops=1',
    which only led to the refusal of the files themselves: that refusal comes first."""
    from open4m.sources.world import SHIPPED
    from open4m.tokenizers import load_tokenizer

    (tmp_path / "depth").mkdir()
    Image.fromarray(np.full((32, 32), 2000, np.uint16)).save(tmp_path / "depth" / "a.png")
    tok = load_tokenizer(SHIPPED / "tokenizers" / "tok_depth.safetensors")
    for n_crops in (1, 2):
        with pytest.raises(ValueError, match="already in its model's form") as err:
            pretokenize(tmp_path, "depth", tok, n_crops=n_crops, progress=False)
        assert "n_crops" not in str(err.value)

def test_tokenize_cli_encodes_sequences(tmp_path, capsys):
    make_dataset(tmp_path, n=2)
    for i in range(2):
        (tmp_path / "caption" / "part").mkdir(parents=True, exist_ok=True)
        (tmp_path / "caption" / "part" / f"{i}.txt").write_text("two dogs")
    text = _text_tokenizer()
    text.save_pretrained(tmp_path / "text")
    assert main(["tokenize", "--data", str(tmp_path), "--modality", "caption", "--tokenizer",
                 str(tmp_path / "text")]) == 0
    assert "wrote 2 token files" in capsys.readouterr().out
    assert np.load(tmp_path / "tok_caption" / "part" / "0.npy").shape[0] == 1
    assert main(["tokenize", "--data", str(tmp_path), "--modality", "rgb"]) == 2  # an image modality needs a tokenizer
    assert "needs --tokenizer" in capsys.readouterr().err


def test_sequences_in_shards_follow_the_crops_of_the_folder(tmp_path, reference_dir):
    from open4m.data.formats import folder_to_shards

    make_dataset(tmp_path / "folder")
    for i in range(3):
        _write_json(tmp_path / "folder" / "det" / "part" / f"{i}.json",
                    {"instances": [{"boxes": [0.1, 0.1, 0.9, 0.9], "class_name": "cat"}]})
    folder_to_shards(tmp_path / "folder", tmp_path / "shards", samples_per_shard=2, progress=False)
    text = _text_tokenizer()
    pretokenize(tmp_path / "folder", "det", text, n_crops=2, progress=False)
    pretokenize(tmp_path / "shards", "det", text, n_crops=2, progress=False)
    from open4m.data.formats import ShardDataset

    for s in ShardDataset(str(tmp_path / "shards"), ["tok_det"]):
        assert np.array_equal(s["tok_det"], np.load(tmp_path / "folder" / "tok_det" / f"{s['__key__']}.npy"))


def test_sequence_embeddings_need_no_tokenizing(tmp_path, capsys):
    (tmp_path / "t5_caption").mkdir()
    np.save(tmp_path / "t5_caption" / "a.npy", np.zeros((3, 4096), np.float32))
    assert main(["tokenize", "--data", str(tmp_path), "--modality", "t5_caption"]) == 2
    assert "nothing to tokenize" in capsys.readouterr().err
