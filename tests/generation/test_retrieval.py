"""Retrieval: gallery index (exact cosine search, save/load), predicted embeddings, `open4m index/retrieve`."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from open4m.cli import main as cli_main
from open4m.generation.pipeline import pipeline
from open4m.generation.retrieval import GalleryIndex, predict_embeddings

from gallery_model import GLOBAL, tiny_gallery_model


@pytest.fixture(scope="module")
def setup():
    return tiny_gallery_model()


def test_exact_cosine_search_and_round_trip(tmp_path):
    index = GalleryIndex.build(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), ["x", "y", "xy"])
    hits = index.search(torch.tensor([3.0, 0.1]), k=2)[0]
    assert [k for k, _ in hits] == ["x", "xy"] and hits[0][1] == pytest.approx(3 / np.hypot(3, 0.1))
    loaded = GalleryIndex.load(index.save(tmp_path / "g.index"))
    assert loaded.keys == index.keys
    torch.testing.assert_close(loaded.vectors, index.vectors)
    with pytest.raises(ValueError, match="3-d but the index holds 2-d"):
        index.search(torch.zeros(1, 3))
    if importlib.util.find_spec("faiss") is None:
        with pytest.raises(ValueError, match=r"pip install .open4m\[faiss\]."):
            index.search(torch.tensor([1.0, 0.0]), use_faiss=True)
    else:
        assert index.search(torch.tensor([3.0, 0.1]), k=2, use_faiss=True)[0][0][0] == "x"


def test_predicted_embeddings_are_vectors_and_reproduce(setup):
    model, tok = setup
    pipe = pipeline(f"rgb->{GLOBAL}", model=model, tokenizers={GLOBAL: tok}, schemes="roar", steps=1, temps=0.1)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8))
    a, b = predict_embeddings(pipe, image, seed=3), predict_embeddings(pipe, image, seed=3)
    assert a.shape == (1, 768) and torch.equal(a, b)
    with pytest.raises(ValueError, match="did not decode to vectors"):
        predict_embeddings(pipeline(f"rgb->{GLOBAL}", model=model, tokenizers={GLOBAL: None}, steps=1), image)



def test_index_records_how_it_was_embedded(tmp_path):
    settings = {"model": "me/model", "target": GLOBAL, "temps": "0.1", "top_p": "0.8", "seed": 0}
    index = GalleryIndex.build(torch.eye(2), ["a", "b"], settings)
    loaded = GalleryIndex.load(index.save(tmp_path / "g.index"))
    assert loaded.settings == settings and loaded.differences(settings) == []
    assert loaded.differences({**settings, "seed": 5}) == ["seed 0 (the query: 5)"]
    assert GalleryIndex.build(torch.eye(2), ["a", "b"]).differences(settings) == []  # older files recorded none


def test_cli_retrieve_warns_when_the_query_is_embedded_otherwise(setup, tmp_path, capsys, caplog):
    # A query predicted with another seed (or model, target, sampling) was ranked against the gallery in silence.
    model, tok = setup
    model.save_file(tmp_path / "model.safetensors")
    tok.save_pretrained(tmp_path / "toks" / GLOBAL)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    Image.fromarray(np.zeros((224, 224, 3), dtype=np.uint8)).save(gallery / "img0.png")
    common = ["--model", str(tmp_path / "model.safetensors"), "--tokenizers", str(tmp_path / "toks")]
    assert cli_main(["-q", "index", *common, "--images", str(gallery), "--out", str(tmp_path / "g.index")]) == 0
    query = ["retrieve", *common, "--index", str(tmp_path / "g.index"), "--input", f"rgb={gallery / 'img0.png'}"]
    assert cli_main(query) == 0 and "was embedded with" not in caplog.text
    assert cli_main([*query, "--seed", "5"]) == 0
    assert "was embedded with seed 0 (the query: 5)" in caplog.text

def test_cli_index_and_retrieve(setup, tmp_path, capsys):
    model, tok = setup
    model.save_file(tmp_path / "model.safetensors")
    tok.save_pretrained(tmp_path / "toks" / GLOBAL)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(gallery / f"img{i}.png")
    common = ["--model", str(tmp_path / "model.safetensors"), "--tokenizers", str(tmp_path / "toks")]
    assert cli_main(["index", *common, "--images", str(gallery), "--out", str(tmp_path / "g.index")]) == 0
    assert "indexed 3 images (768-d)" in capsys.readouterr().out
    rc = cli_main(["retrieve", *common, "--index", str(tmp_path / "g.index"), "--input", f"rgb={gallery / 'img1.png'}",
                   "--k", "3", "--json"])
    assert rc == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 3
    same = [r for r in results if r["key"] == "img1.png"][0]
    assert same["score"] == pytest.approx(1.0, abs=1e-5)  # same image, same seed: the same embedding
    assert cli_main(["retrieve", *common, "--index", str(tmp_path / "missing.index"), "--input", "rgb=x.png"]) == 2
    assert "no such file" in capsys.readouterr().err
