"""Token sources for `open4m train`: synthetic scenes, a pre-tokenized folder, a shard root."""

import numpy as np
import pytest
import torch

from open4m.data.batches import batch_loader, build_masker
from open4m.data.formats import folder_to_shards
from open4m.sources import build_source
from open4m.sources.shards import TokenShards
from open4m.sources.synthetic import SyntheticTokens
from open4m.sources.tokens import TokenFolder

MODS = ["rgb@224", "tok_rgb@224", "tok_semseg@224", "caption", "det"]


def test_synthetic_samples_are_deterministic_and_valid():
    src = SyntheticTokens(MODS, 10, seed=3)
    a, b = src[4], SyntheticTokens(MODS, 10, seed=3)[4]
    assert torch.equal(a["tok_rgb@224"], b["tok_rgb@224"]) and a["caption"] == b["caption"]
    assert a["tok_rgb@224"].shape == (196,) and a["tok_rgb@224"].max() < 16384
    assert a["rgb@224"].shape == (3, 224, 224)
    assert all(len(chunk) == 5 for chunk in a["det"])
    with pytest.raises(ValueError, match="tok_"):
        SyntheticTokens(["depth"], 4)
    built = build_source("synthetic", MODS, num_samples=10, seed=3, image_size=224, split="val")  # split: ignored
    assert isinstance(built, SyntheticTokens) and len(built) == 10 and torch.equal(built[4]["tok_rgb@224"],
                                                                                   a["tok_rgb@224"])


def _token_folder(root, n=5):
    src = SyntheticTokens(["tok_rgb@224", "caption"], n)
    for i in range(n):
        (root / "tok_rgb").mkdir(parents=True, exist_ok=True)
        (root / "caption").mkdir(exist_ok=True)
        crops = np.stack([src[i]["tok_rgb@224"].numpy(), np.zeros(196, np.int64)])  # `open4m tokenize`: a row per crop
        np.save(root / "tok_rgb" / f"{i:03d}.npy", crops if i % 2 else crops[0].reshape(14, 14))
        np.save(root / "caption" / f"{i:03d}.npy", np.array(src[i]["caption"]))
    return src


def test_token_folder_source(tmp_path):
    src = _token_folder(tmp_path)
    folder = build_source(str(tmp_path), ["tok_rgb@224", "caption"], split="val")  # validation: crop 0
    assert isinstance(folder, TokenFolder) and len(folder) == 5
    assert isinstance(build_source(f"tokens:{tmp_path}", ["caption"]), TokenFolder)
    for i in (2, 3):
        assert np.array_equal(np.asarray(folder[i]["tok_rgb@224"]).reshape(-1), src[i]["tok_rgb@224"].numpy())
    train = build_source(str(tmp_path), ["tok_rgb@224", "caption"], seed=4)  # training: a stored crop per epoch
    picks = {int(np.asarray(train[3]["tok_rgb@224"]).any()) for train.epoch in range(8)}
    assert picks == {0, 1}  # the all-zero second crop of sample 3 shows in some epochs, not in others
    m = build_masker("symmetric", ["tok_rgb@224", "caption"], input_tokens=8, target_tokens=8)
    batch = next(batch_loader(folder, m, 2, seed=0))
    assert batch["tok_rgb@224"]["tensor"][0].numel() == 196 and len(batch["caption"]["tensor"]) == 2
    with pytest.raises(FileNotFoundError, match="synthetic"):
        build_source(str(tmp_path / "nope"), ["caption"])


def test_shard_root_streams_the_folder_under_modality_names(tmp_path):
    _token_folder(tmp_path / "folder")
    folder_to_shards(tmp_path / "folder", tmp_path / "shards", samples_per_shard=2, progress=False)
    shards = build_source(str(tmp_path / "shards"), ["tok_rgb@224", "caption"], folders={"tok_rgb@224": "tok_rgb"})
    assert isinstance(shards, TokenShards) and shards.splits_by_rank
    folder = TokenFolder(tmp_path / "folder", ["tok_rgb@224", "caption"])
    streamed = list(shards)
    assert len(streamed) == 5 and all(set(s) == {"tok_rgb@224", "caption"} for s in streamed)
    assert [list(s["caption"]) for s in streamed] == [list(folder[i]["caption"]) for i in range(5)]
    assert isinstance(build_source(f"shards:{tmp_path / 'shards'}", ["caption"]), TokenShards)
    with pytest.raises(FileNotFoundError, match="index.json"):
        build_source(f"shards:{tmp_path / 'folder'}", ["caption"])
