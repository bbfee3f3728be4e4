import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from open4m.cli import main
from open4m.tokenizers import load_tokenizer
from open4m.train.monitor import read_metrics
from open4m.train.tasks import tokenizer as task
from open4m.train.tasks.tokenizer import build_tokenizer, train_tokenizer

TINY = dict(image_size=32, n_channels=3, enc_type="vit", enc_dim=64, enc_depth=1, enc_heads=2, dec_type="vit",
            dec_dim=64, dec_depth=1, dec_heads=2, patch_size=8, codebook_size=64, latent_dim=8)


def blobs(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Coloured discs on black: simple images a tiny tokenizer can learn in a few seconds."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    c = torch.rand(n, 2, generator=g) * 1.4 - 0.7
    r = torch.rand(n, generator=g) * 0.4 + 0.2
    col = torch.rand(n, 3, generator=g) * 2 - 1
    disc = (((xx - c[:, 0, None, None]) ** 2 + (yy - c[:, 1, None, None]) ** 2) < r[:, None, None] ** 2).float()
    return col[:, :, None, None] * disc[:, None]


class Tensors(Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def recipe(out, *, steps=4, batch_size=4, lr=1e-4, warmup=1, every=1, sample_every=0, save_every=2, ema=0.999,
           kind="vqvae", model=None, min_lr=1e-6):
    """A tokenizer recipe for a dataset given in memory."""
    return task.TokenizerRecipe(
        kind=kind, model=model or TINY, data=task.DataSection(batch_size=batch_size),
        objective=task.ObjectiveSection(sample_every=sample_every),
        optim=task.TokenizerOptim(lr=lr, warmup=warmup, min_lr=min_lr),
        train=task.TokenizerRun(steps=steps, out_dir=str(out), save_every=save_every, ema_decay=ema, threads=1),
        log=task.TokenizerLog(every=every, progress=False))


def recon_mse(tok, x: torch.Tensor, **kw) -> float:
    with torch.no_grad():
        return F.mse_loss(tok.decode(tok.encode(x), **kw), x).item()


def test_vqvae_training_reduces_reconstruction_error(tmp_path):
    torch.manual_seed(0)
    result = train_tokenizer(recipe(tmp_path, steps=120, batch_size=16, lr=3e-3, warmup=5, every=20, sample_every=60,
                                    save_every=60, ema=0.9), dataset=Tensors(blobs(256)))
    held_out = blobs(64, seed=7)
    fresh = build_tokenizer("vqvae", TINY).eval()
    trained = load_tokenizer(tmp_path / "tokenizer")
    assert result.model_path == tmp_path / "tokenizer"
    assert recon_mse(trained, held_out) < 0.3 * recon_mse(fresh, held_out)
    logged = [r for r in read_metrics(tmp_path) if "train/loss" in r]
    assert 0 < logged[-1]["train/codebook_usage"] <= 1 and logged[-1]["train/codebook_perplexity"] > 1
    assert {"train/psnr", "train/recon_loss", "train/lr"} <= set(logged[-1])
    assert (tmp_path / "samples" / "step_0000120.png").exists()


def test_resume_is_exact(tmp_path):
    """A constant LR makes a 4-step run resumed to 6 steps the same run as a straight 6-step one."""
    flat = dict(warmup=0, lr=1e-3, min_lr=1e-3)
    straight = train_tokenizer(recipe(tmp_path / "a", steps=6, **flat), dataset=Tensors(blobs(16)))
    train_tokenizer(recipe(tmp_path / "b", steps=4, **flat), dataset=Tensors(blobs(16)))
    resumed = train_tokenizer(recipe(tmp_path / "b", steps=6, **flat), dataset=Tensors(blobs(16)))
    losses = lambda r: {m["step"]: m["train/loss"] for m in r.metrics if "train/loss" in m}  # noqa: E731
    assert losses(resumed) == losses(straight)
    a, b = load_tokenizer(straight.model_path).state_dict(), load_tokenizer(resumed.model_path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_architecture_is_one_error(tmp_path):
    """torch's load_state_dict says a mismatch as a RuntimeError listing every key: one line naming the recipe."""
    from open4m.errors import CheckpointError

    train_tokenizer(recipe(tmp_path, steps=2), dataset=Tensors(blobs(8)))
    with pytest.raises(CheckpointError, match="another model than this recipe builds") as err:
        train_tokenizer(recipe(tmp_path, steps=4, model=dict(TINY, enc_dim=32, dec_dim=32)), dataset=Tensors(blobs(8)))
    assert "shape mismatches" in str(err.value) and "\n" not in str(err.value)


def test_a_legacy_checkpoint_resumes(tmp_path):
    """`OUT/checkpoint.safetensors` of the trainer before the single engine becomes an engine checkpoint."""
    import json

    from open4m.tokenizers.checkpoint import write_safetensors

    model = build_tokenizer("vqvae", TINY)
    ema = build_tokenizer("vqvae", TINY)
    decay = [p for n, p in model.named_parameters() if not (p.ndim < 2 or "pos_emb" in n)]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "pos_emb" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.99))
    model(blobs(4))[0].pow(2).mean().backward()
    opt.step()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    state = opt.state_dict()
    for pid, st in state["state"].items():
        for name, value in st.items():
            tensors[f"optim.{pid}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    write_safetensors(tmp_path / "checkpoint.safetensors", tensors,
                      {"step": "3", "param_groups": json.dumps(state["param_groups"])})
    result = train_tokenizer(recipe(tmp_path, steps=5), dataset=Tensors(blobs(16)))
    assert [m["step"] for m in result.metrics if "train/loss" in m] == [4, 5]


def test_segmentation_and_vector_losses_and_metrics(tmp_path):
    seg = dict(TINY, n_channels=8, n_labels=5)
    maps = torch.randint(0, 5, (8, 32, 32))
    result = train_tokenizer(recipe(tmp_path / "s", steps=2, sample_every=1, model=seg), dataset=Tensors(maps))
    assert "train/miou" in result.metrics[-1] and (tmp_path / "s" / "samples" / "step_0000002.png").exists()
    mlp = dict(image_size=1, patch_size=1, n_channels=16, enc_type="BottleneckMLP/B_1-Wi_32",
               dec_type="BottleneckMLP/B_1-Wi_32", quant_type="memcodes", num_codebooks=4, codebook_size=16, latent_dim=16)
    result = train_tokenizer(recipe(tmp_path / "m", steps=2, sample_every=1, kind="mlp", model=mlp),
                             dataset=Tensors(torch.randn(8, 16, 1, 1)))
    assert "train/cosine" in result.metrics[-1]


def test_cli_trains_a_depth_tokenizer_from_a_folder(tmp_path):
    data = tmp_path / "depth" / "scene_a"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        np.save(data / f"{i}.npy", rng.uniform(0.5, 10.0, (40, 40)).astype(np.float32))
    out = tmp_path / "run"
    code = main(["train-tokenizer", "--kind", "vqvae", "--modality", "depth", "--data", str(tmp_path / "depth"),
                 "--out", str(out), "--steps", "2", "--batch-size", "3", "--image-size", "32",
                 "--set", "model.enc_type=vit_t_enc", "--set", "model.dec_type=vit_t_dec", "--set", "model.patch_size=8",
                 "--set", "model.codebook_size=32", "--set", "objective.sample_every=2"])
    assert code == 0
    tok = load_tokenizer(out / "tokenizer")
    assert tok.config.n_channels == 1 and tok.preprocessor.input == "depth"
    assert tok.encode(rng.uniform(1, 5, (32, 32))).shape == (1, 4, 4)
    assert list((out / "samples").glob("*.png"))


def test_cli_trains_a_text_tokenizer(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a dog on the beach\na cat on a sofa\n" * 20)
    assert main(["train-tokenizer", "--kind", "text", "--data", str(corpus), "--out", str(tmp_path / "tok"),
                 "--vocab-size", "4350"]) == 0
    assert load_tokenizer(tmp_path / "tok").token_to_id("v0=0") == 204


def test_cli_reports_bad_settings(tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"")
    code = main(["train-tokenizer", "--kind", "vqvae", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--set", "model.codebok_size=3"])
    assert code == 2 and "codebok_size" in capsys.readouterr().err
    # one image given as --data: it was 'data folder x.npy does not exist', of a file that is there
    assert main(["train-tokenizer", "--kind", "vqvae", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "x.npy is a file; give the folder that holds the training files" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_divae_training_reduces_reconstruction_error(tmp_path):
    torch.manual_seed(0)
    cfg_model = {k: v for k, v in TINY.items() if not k.startswith("dec_")}
    cfg_model.update(dec_type="unet", dec_channels=16, dec_channel_mult=(1, 2))
    train_tokenizer(recipe(tmp_path, steps=300, batch_size=16, lr=3e-3, warmup=5, ema=0.9, every=50, save_every=300,
                           kind="divae", model=cfg_model), dataset=Tensors(blobs(256)))
    held_out = blobs(32, seed=7)
    fresh = build_tokenizer("divae", cfg_model).eval()
    assert recon_mse(load_tokenizer(tmp_path / "tokenizer"), held_out, steps=10) < 0.9 * recon_mse(fresh, held_out, steps=10)


def test_cli_modality_preset_sets_kind_and_architecture(tmp_path):
    data = tmp_path / "vectors"
    data.mkdir()
    for i in range(4):
        np.save(data / f"{i}.npy", np.random.default_rng(i).standard_normal(768).astype(np.float32))
    out = tmp_path / "run"
    assert main(["train-tokenizer", "--modality", "DINOv2-B14-global", "--size", "tiny", "--data", str(data),
                 "--out", str(out), "--steps", "1", "--batch-size", "2"]) == 0
    tok = load_tokenizer(out / "tokenizer")
    assert tok.config.quant_type == "memcodes" and tok.num_tokens() == 16


@pytest.mark.parametrize("flags", [["--kind", "vqvae"], ["--kind", "vqvae", "--modality", "rgb"]])
def test_cli_size_tiny_shrinks_the_kinds_own_networks(tmp_path, flags):
    """`--size tiny` where no official architecture applies (no --modality, or a --kind other than its preset's,
    rgb's being a DiVAE): the kind's default ViT-B was trained unsaid (171 M parameters for a tiny run)."""
    from PIL import Image

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / f"{i}.png")
    assert main(["-q", "train-tokenizer", *flags, "--size", "tiny", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--steps", "1", "--batch-size", "2", "--image-size", "32", "--set", "model.codebook_size=32"]) == 0
    tok = load_tokenizer(tmp_path / "run" / "tokenizer")
    assert (tok.config.enc_type, tok.config.dec_type) == ("vit_t_enc", "vit_t_dec")
    assert sum(p.numel() for p in tok.parameters()) < 1_000_000
