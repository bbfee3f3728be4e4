"""Approximate retrieval through FAISS (the `open4m[faiss]` extra): recall against the exact search, the index
file round trip, the CLI options, and the one-line error without the package."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
import torch

from open4m.errors import ConfigError
from open4m.generation.ann import ApproximateIndex, default_lists
from open4m.generation.retrieval import GalleryIndex


def clustered(n: int, dim: int = 64, clusters: int = 50, seed: int = 0, spread: float = 0.3) -> torch.Tensor:
    """Random vectors around random centres: the shape of real embedding galleries (and of the benchmark)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=g)
    which = torch.randint(0, clusters, (n,), generator=g)
    return centres[which] + spread * torch.randn(n, dim, generator=g)


def recall(approx: list, exact: list, k: int) -> float:
    return float(np.mean([len({key for key, _ in a[:k]} & {key for key, _ in e[:k]}) / k for a, e in zip(approx, exact)]))


def test_default_lists_follow_the_gallery_size():
    assert default_lists(10) == 1 and default_lists(10_000) == 256 and default_lists(1_000_000) == 4000


def test_without_faiss_the_error_names_the_extra(monkeypatch):
    real = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    index = GalleryIndex.build(clustered(100), [str(i) for i in range(100)])
    with pytest.raises(ConfigError, match=r"^an approximate \(ivf\) index needs FAISS, which is not installed: "
                                          r"pip install 'open4m\[faiss\]'"):
        index.with_approximate("ivf")
    assert index.search(torch.zeros(64) + 1, k=3)  # the exact search needs nothing


faiss = pytest.importorskip("faiss", reason="the approximate index needs the open4m[faiss] extra")


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_search_agrees_with_the_exact_one(kind, tmp_path):
    vectors, queries = clustered(4100).split([4000, 100])  # queries: other points of the same clusters
    keys = [f"img{i}.png" for i in range(len(vectors))]
    exact = GalleryIndex.build(vectors, keys)
    approx = exact.with_approximate(kind)
    want = exact.search(queries, k=10)
    got = approx.search(queries, k=10)
    assert recall(got, want, 1) >= 0.95 and recall(got, want, 10) >= 0.9
    assert approx.search(queries, k=10, exact=True) == want  # exact on request
    for a, e in zip(got, want):  # the scores are the same cosines
        common = dict(e)
        assert all(abs(s - common[key]) < 1e-4 for key, s in a if key in common)

    loaded = GalleryIndex.load(approx.save(tmp_path / "g.index"))
    assert loaded.approximate is not None and loaded.approximate.kind == kind
    assert loaded.search(queries, k=10) == got  # the same structure after the round trip


def test_more_probing_is_closer_to_exact():
    vectors, queries = clustered(4100, clusters=200, spread=0.6).split([4000, 100])
    exact = GalleryIndex.build(vectors, [str(i) for i in range(len(vectors))])
    approx = exact.with_approximate("ivf", lists=64, probe=1)
    want = exact.search(queries, k=10)
    low, high = recall(approx.search(queries, k=10), want, 10), recall(approx.search(queries, k=10, probe=64), want, 10)
    assert high == 1.0 and low < high  # probing every cell is exact


def test_bad_settings_are_one_line_errors():
    index = GalleryIndex.build(clustered(100), [str(i) for i in range(100)])
    with pytest.raises(ConfigError, match="kind 'pq': use one of ivf, hnsw"):
        index.with_approximate("pq")
    with pytest.raises(ConfigError, match="--lists 500: an IVF index of 100 vectors needs 1 to 100 cells"):
        index.with_approximate("ivf", lists=500)
    with pytest.raises(ConfigError, match="--probe 0: use at least 1"):
        index.with_approximate("hnsw").search(torch.ones(64), probe=0)


def test_cli_builds_and_searches_an_approximate_index(tmp_path, monkeypatch, capsys):
    """`open4m index --approximate` stores the FAISS index; `retrieve` uses it (and `--exact` does not)."""
    from open4m.cli import main as cli_main
    from open4m.cli.commands import index as index_cmd
    from open4m.cli.commands import retrieve as retrieve_cmd
    from open4m.generation import retrieval
    from open4m.modalities import Kind

    vectors = clustered(200, dim=16)
    names = [f"img{i:03d}.png" for i in range(200)]
    (tmp_path / "gallery").mkdir()
    for name in names:
        (tmp_path / "gallery" / name).write_bytes(b"")
    row = {name: i for i, name in enumerate(names)}

    class Pipe:  # stands in for the model: each image's embedding is its row of `vectors`
        class model:
            modality_info = {"rgb@224": type("Info", (), {"kind": Kind.PIXELS})()}

        class schedule:  # index records the target it predicts (6edb949)
            targets = ("clip_feat",)

    monkeypatch.setattr(index_cmd, "embedding_pipeline", lambda args, conds: (Pipe(), ["rgb@224"]))
    monkeypatch.setattr(retrieve_cmd, "embedding_pipeline", lambda args, conds: (Pipe(), ["rgb@224"]))
    import open4m.data.codecs as codecs
    monkeypatch.setattr(codecs, "open_image", lambda path, what: path.name)  # index opens the gallery through it
    monkeypatch.setattr(retrieval, "predict_embeddings", lambda pipe, inputs, seed=0: vectors[row[next(iter(
        inputs.values()))]][None])
    import open4m.cli.commands.generate as generate_cmd
    monkeypatch.setattr(generate_cmd, "input_value", lambda cond, value, model: value)

    out = tmp_path / "g.index"
    assert cli_main(["index", "--model", "m", "--images", str(tmp_path / "gallery"), "--out", str(out),
                     "--approximate", "hnsw", "--links", "8"]) == 0
    assert GalleryIndex.load(out).approximate.params == {"links": 8, "probe": 64}
    capsys.readouterr()
    for extra in ([], ["--exact"], ["--probe", "200"]):
        assert cli_main(["retrieve", "--model", "m", "--index", str(out), "--input", "rgb=img007.png", "--k", "3",
                         "--json", *extra]) == 0
        results = json.loads(capsys.readouterr().out)
        assert results[0]["key"] == "img007.png" and results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert cli_main(["index", "--model", "m", "--images", str(tmp_path / "gallery"), "--out", str(tmp_path / "h.index"),
                     "--approximate", "ivf", "--lists", "0"]) == 2
    assert "--lists 0" in capsys.readouterr().err
