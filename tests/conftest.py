"""Shared test helpers: where the reference golden files live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the network: Hub lookups answer from local caches the tests build, and a file
# that is not cached fails at once instead of after huggingface_hub's retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_fixtures() -> Path:
    """../shared/fixtures/reference beside the repo, or $OPEN4M_FIXTURES/reference."""
    base = Path(os.environ.get("OPEN4M_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
    return base / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = reference_fixtures()
    if not path.is_dir():
        pytest.skip(f"reference fixtures not found at {path} (set OPEN4M_FIXTURES to the shared/fixtures folder)")
    return path
