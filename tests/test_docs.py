"""The documentation: the API reference is generated from the docstrings and builds with --strict."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds_strict(tmp_path):
    """A renamed or removed function makes the build fail instead of leaving a stale page."""
    pytest.importorskip("mkdocstrings", reason="mkdocs and mkdocstrings are part of the test extra")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "training" / "index.html").is_file()


def test_every_guide_is_in_the_navigation():
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(node) -> set[str]:
        if isinstance(node, str):
            return {node}
        if isinstance(node, list):
            return set().union(*(pages(n) for n in node))
        return set().union(*(pages(v) for v in node.values()))

    listed = pages(nav)
    guides = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert guides == listed, f"not in mkdocs.yml nav: {sorted(guides - listed)}; missing files: {sorted(listed - guides)}"
