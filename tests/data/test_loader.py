"""Raw aligned samples tokenized on the fly become masked batches a FourM trains on."""

import dataclasses

import numpy as np
import pytest
import torch

from open4m import modalities
from open4m.data.batches import batch_loader
from open4m.data.formats import FolderDataset
from open4m.data.loader import TokenizingDataset, codec_input
from open4m.data.masking import AlphaMixture, DirichletMasking
from open4m.data.synthetic import write_dataset
from open4m.modalities import Kind, Modality
from open4m.model import FourM, FourMConfig
from open4m.tokenizers import TextTokenizer
from open4m.tokenizers.config import VQVAEConfig
from open4m.tokenizers.presets import official_config
from open4m.train.tasks.tokenizer import build_tokenizer

SEQS = {"caption": "caption", "det": "det", "color_palette": "color_palette", "metadata": "metadata"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    write_dataset(root, n=6, size=64, progress=False)
    mods = [Modality("rgb@64", Kind.PIXELS, image_size=64, patch_size=16, num_channels=3, encoder=True),
            Modality("tok_loaderdepth@64", Kind.IMAGE_TOKENS, vocab_size=256, image_size=64, patch_size=16,
                     encoder=True, decoder=True)]
    # rgb@64 may already be registered (the demo registers its own): reuse it, remove only ours.
    mods = [m for m in mods if m.name not in modalities.all_modalities()]
    for m in mods:
        modalities.register(m)
    _, cfg = official_config("depth", "tiny")
    vqvae_fields = {f.name for f in dataclasses.fields(VQVAEConfig)}  # the depth preset is a DiVAE: keep the VQ part
    cfg = {k: v for k, v in cfg.items() if k in vqvae_fields}
    tok = build_tokenizer("vqvae", {**cfg, "image_size": 64, "codebook_size": 256, "dec_type": "vit_t_dec"}).eval()
    ds = FolderDataset(root)
    text = TextTokenizer.train([ds[i]["caption"] for i in range(len(ds))], vocab_size=4400)
    yield ds, tok, text
    for m in mods:
        modalities.unregister(m.name)


def test_items_are_deterministic_token_samples(world):
    ds, tok, text = world
    t = TokenizingDataset(ds, image_size=64, image_tokenizers={"tok_loaderdepth@64": ("depth", tok)}, sequences=SEQS,
                          text_tokenizer=text, seed=3)
    a, b = t[2], t[2]
    assert set(a) == {"rgb@64", "tok_loaderdepth@64", *SEQS}
    assert a["rgb@64"].shape == (3, 64, 64) and a["tok_loaderdepth@64"].shape == (16,)
    for k in a:
        assert torch.equal(a[k], b[k])
    boxes = text.decode(a["det"])
    assert boxes.startswith("v0=") and any(s in boxes for s in ("cube", "sphere", "cone", "cylinder", "torus", "pyramid"))
    t.set_epoch(1)  # a new epoch draws a new crop
    assert not all(torch.equal(t[i]["rgb@64"], TokenizingDataset(ds, image_size=64, seed=3)[i]["rgb@64"]) for i in range(6))


def test_masked_batches_train_a_fourm(world):
    ds, tok, text = world
    t = TokenizingDataset(ds, image_size=64, image_tokenizers={"tok_loaderdepth@64": ("depth", tok)},
                          sequences={"caption": "caption", "det": "det"}, text_tokenizer=text)
    names = t.modality_names
    masker = DirichletMasking(AlphaMixture.single(names, 1.0), 24, 24, image_size=64)
    batch = next(batch_loader(t, masker, batch_size=3, seed=0))
    model = FourM(FourMConfig(domains_in=names, domains_out=names[1:], image_size=64, dim=32, encoder_depth=1,
                              decoder_depth=1, num_heads=2))
    loss, per_mod = model(batch, 24, 24)
    assert torch.isfinite(loss) and set(per_mod) == set(names[1:])


def test_codec_inputs_and_errors(world):
    import random
    palettes = [{"1": [[1, 2, 3]], "2": [[1, 2, 3], [4, 5, 6]]}]
    assert codec_input("color_palette", palettes, random.Random(0)) in ([(1, 2, 3)], [(1, 2, 3), (4, 5, 6)])
    with pytest.raises(ValueError, match="caption: expected text"):
        codec_input("caption", 5, random.Random(0))
    ds, tok, text = world
    with pytest.raises(ValueError, match="text_tokenizer"):
        TokenizingDataset(ds, image_size=64, sequences={"caption": "caption"})
    with pytest.raises(ValueError, match="image-token modality"):
        TokenizingDataset(ds, image_size=64, image_tokenizers={"caption": ("depth", tok)})
