"""Shared helpers for tokenizer tests: fixture lookup and a single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def reference_dir() -> Path:
    root = os.environ.get("OPEN4M_FIXTURES")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
    return base / "reference"


@pytest.fixture
def reference() -> Path:
    path = reference_dir()
    if not (path / "vqvae_rgb_tiny.safetensors").exists():
        pytest.skip(f"reference fixtures not found at {path} (set OPEN4M_FIXTURES)")
    return path
