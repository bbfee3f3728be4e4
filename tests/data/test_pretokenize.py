import numpy as np
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
