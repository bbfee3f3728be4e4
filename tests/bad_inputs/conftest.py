"""Fixtures of the bad-input battery: the valid assets (`world`) and `check`, which runs one case and
holds its message against docs/errors.md (or, with OPEN4M_WRITE_ERRORS_DOC=1, rewrites that page at the
end of the session). See battery.py."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

import battery

WRITE_DOC = os.environ.get("OPEN4M_WRITE_ERRORS_DOC") == "1"
REGENERATE = "regenerate it: OPEN4M_WRITE_ERRORS_DOC=1 python -m pytest tests/bad_inputs"


def _synth(out: Path, n: int = 3, size: int = 64) -> Path:
    from open4m.cli import main

    assert main(["-q", "synth", "--out", str(out), "--n", str(n), "--size", str(size)]) == 0
    return out


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> battery.World:
    from open4m.sources.world import SHIPPED

    root = tmp_path_factory.mktemp("battery_world")
    model = root / "model"
    shutil.copytree(SHIPPED, model)
    data = _synth(root / "data")
    photo = next(iter(sorted((data / "rgb").iterdir())))
    return battery.World(root=root, model=model, data=data, photo=photo, builders=dict(BUILDERS))


#: Named valid assets a case can ask `world.asset(name)` for, built on first use (register more here).
BUILDERS: dict = {}


@pytest.fixture
def check(world: battery.World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`check(case)`: run the case in a fresh folder and compare its message with docs/errors.md."""

    def run(case: battery.Case) -> battery.Seen:
        seen = battery.run_case(case, world, tmp_path / "user", monkeypatch)
        if not WRITE_DOC:
            row = battery.documented().get(case.what)
            assert row is not None, f"{case.id}: no row in docs/errors.md for {case.what!r}; {REGENERATE}"
            assert (row.command, row.message) == (seen.command, seen.message), (
                f"{case.id}: docs/errors.md shows\n  {row.command}\n  {row.message}\nbut the battery saw\n"
                f"  {seen.command}\n  {seen.message}\n{REGENERATE}")
        return seen

    return run


def all_cases() -> list[battery.Case]:
    """Every case of the battery: the `CASES` of each tests/bad_inputs/test_*.py (ids unique)."""
    cases: list[battery.Case] = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        cases += getattr(importlib.import_module(path.stem), "CASES", [])
    return cases


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With OPEN4M_WRITE_ERRORS_DOC=1: docs/errors.md from the cases that ran (merged into the page's
    other rows, unless the whole battery ran, which drops rows no case gives any more)."""
    if not WRITE_DOC or not battery.SEEN:
        return
    whole = set(battery.SEEN) == {case.id for case in all_cases()} and exitstatus == 0
    rows = {} if whole else battery.documented()
    rows.update(battery.rows_seen())
    battery.ERRORS_DOC.write_text(battery.render(rows), encoding="utf-8")
