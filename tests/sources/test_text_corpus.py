"""`text:PATH`: caption-only samples, dealt to workers, mixed with an aligned folder."""

import itertools
import json

import numpy as np
import pytest
import torch

from open4m.data.formats import FolderDataset
from open4m.data.synthetic import write_dataset
from open4m.sources import build_source
from open4m.sources.mixture import StreamMixture, mixture
from open4m.sources.text import TextCorpus


def test_text_corpus_and_mixture(tmp_path):
    write_dataset(tmp_path / "w", 7, size=32, progress=False)
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "third"}) + "\n")
    corpus = TextCorpus([tmp_path / "a.txt", tmp_path / "b.jsonl"])
    assert [s["caption"] for s in corpus] == ["first line", "second line", "third"]
    mix = mixture([FolderDataset(tmp_path / "w"), corpus], weights=[3, 1], seed=0)
    assert isinstance(mix, StreamMixture)
    draws = list(itertools.islice(mix, 400))
    share = np.mean([d["__source__"] == 1 for d in draws])
    assert 0.17 < share < 0.33
    assert all(set(d) == {"__key__", "caption", "__source__"} for d in draws if d["__source__"] == 1)
    with pytest.raises(ValueError, match="one weight per source"):
        mixture([corpus], [1, 2])
    built = build_source(f"text:{tmp_path / 'a.txt'}", family="aligned")
    assert [s["caption"] for s in built] == ["first line", "second line"]
    aligned = build_source([{"source": str(tmp_path / "w"), "weight": 3}, {"source": f"text:{tmp_path / 'b.jsonl'}",
                                                                          "modalities": ["caption"]}], family="aligned")
    assert isinstance(aligned, StreamMixture) and len(list(itertools.islice(aligned, 20))) == 20
    with pytest.raises(FileNotFoundError, match="not found"):
        TextCorpus(tmp_path / "missing.txt")


def test_text_corpus_deals_lines_to_workers(tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(f"line {i}" for i in range(10)))
    loader = torch.utils.data.DataLoader(TextCorpus(tmp_path), batch_size=None, num_workers=2)
    assert sorted(s["caption"] for s in loader) == sorted(f"line {i}" for i in range(10))
