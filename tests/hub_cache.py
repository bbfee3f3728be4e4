"""Build a real Hugging Face cache on disk (the layout ``huggingface_hub`` reads), for offline Hub tests.

``add_repo(cache, "owner/name", {"model.safetensors": path_or_bytes})`` writes
``models--owner--name/{refs/main, snapshots/<commit>/...}``, so ``hf_hub_download`` with
``cache_dir=cache`` (or ``HF_HUB_CACHE=cache``) and ``HF_HUB_OFFLINE=1`` finds the files through its
normal code path.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Mapping


def add_repo(cache: Path, repo_id: str, files: Mapping[str, Path | bytes | str], revision: str = "main") -> Path:
    """Put ``files`` (relative name -> source file, bytes or text) into the cache as one snapshot; returns it."""
    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for name, src in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path):
            shutil.copyfile(src, target)
        elif isinstance(src, bytes):
            target.write_bytes(src)
        else:
            target.write_text(src)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot
