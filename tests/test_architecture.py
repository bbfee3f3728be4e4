"""The layering is a tested property: import-linter contracts (.importlinter) and no import cycle between subpackages."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "open4m"


def test_import_linter_contracts_are_kept():
    pytest.importorskip("importlinter", reason="import-linter is part of the test extra: pip install -e '.[test]'")
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "open4m" else None


def _edges() -> dict[str, set[str]]:
    """Subpackage -> subpackages it imports (every import counts, also those inside functions)."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        parts = parts[:-1] if is_pkg else parts
        src = _unit(".".join(parts))
        if src is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = parts[:len(parts) - node.level + (1 if is_pkg else 0)] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
                targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                dst = _unit(target)
                if dst and dst != src:
                    edges.setdefault(src, set()).add(dst)
    return edges


def test_no_import_cycle_between_subpackages():
    edges = _edges()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(u for u in edges if reaches(u, u, {u}))
    assert not cycles, f"import cycles through {cycles}"
