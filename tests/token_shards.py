"""A tiny shard root whose samples say who they are, for the data-path tests (tests/data, tests/train)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from open4m.data.formats import folder_to_shards


def write_token_shards(root: Path, n: int, per_shard: int, modalities: Sequence[str] = ("tok_rgb", "caption")) -> Path:
    """`root/folder` of pre-tokenized samples, sample i with caption [i, i + 1, i + 2] (its identity), written
    as `root/shards` of `per_shard` samples each; returns the shard root."""
    rng = np.random.default_rng(0)
    for i in range(n):
        for m in modalities:
            (root / "folder" / m).mkdir(parents=True, exist_ok=True)
            data = np.array([i, i + 1, i + 2]) if m == "caption" else rng.integers(0, 1000, 196)
            np.save(root / "folder" / m / f"{i:04d}.npy", data)
    folder_to_shards(root / "folder", root / "shards", samples_per_shard=per_shard, progress=False)
    return root / "shards"
