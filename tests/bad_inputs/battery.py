"""The bad-input battery's harness: one `Case` per bad input a user can give, run the same way everywhere.

A case is either a command line (``argv``: run through ``open4m.cli.main`` in this process) or a
library call (``call``). What every case must show, checked by :func:`run_case`:

- a command exits with 2 and prints exactly one ``open4m VERB: error: ...`` line (stderr may hold log
  lines before it), with no traceback; a library call raises an :class:`~open4m.errors.Open4mError`
  whose message is one line;
- the message matches ``expect`` (a regex that names the problem and the fix);
- every file the user had before (the case's folder and the shared valid assets) is byte-identical
  after, and none is gone.

The messages seen are recorded (:data:`SEEN`) with the paths in them replaced by placeholders, and
``docs/errors.md`` is that record as a table: the battery checks each row is the one the doc shows,
and ``OPEN4M_WRITE_ERRORS_DOC=1 python -m pytest tests/bad_inputs`` rewrites the page
(tests/bad_inputs/conftest.py).

Cases build their bad inputs with ``setup(user)`` in ``user``, a fresh folder per case (its files are
"the user's"); ``World`` holds the valid assets (the shipped world model, a small dataset, ...) that
a case may point at, built once per session.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from open4m.errors import Open4mError

ROOT = Path(__file__).resolve().parents[2]
ERRORS_DOC = ROOT / "docs" / "errors.md"


@dataclass
class World:
    """Valid assets cases point at (read-only to the cases: the battery checks they are left unchanged)."""

    root: Path
    model: Path  # the shipped world model folder (config.json, model.safetensors, tokenizers/)
    data: Path  # a small synthetic dataset folder (rgb/, depth/, ... per scene)
    photo: Path  # one valid RGB photo (PNG)
    extra: dict[str, Path] = field(default_factory=dict)  # more assets, built on demand by `asset`
    builders: dict[str, Callable[["World"], Path]] = field(default_factory=dict)

    def asset(self, name: str) -> Path:
        """A named valid asset (a checkpoint, a gallery index, shards, ...), built once on first use."""
        if name not in self.extra:
            self.extra[name] = self.builders[name](self)
        return self.extra[name]


@dataclass(frozen=True)
class Case:
    """One bad input. ``id`` is unique across the battery; ``area`` groups the doc's table; ``what``
    says the bad input in words; ``expect`` is a regex searched in the message."""

    id: str
    area: str
    what: str
    expect: str
    argv: Callable[[World, Path], list[str]] | None = None
    call: Callable[[World, Path], Any] | None = None
    setup: Callable[[World, Path], None] | None = None
    process: bool = False  # also run the command as a real `python -m open4m` process

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.call is None):
            raise TypeError(f"case {self.id}: give exactly one of argv / call")


def user_files(**files: Any) -> Callable[[World, Path], None]:
    """A case's setup writing files into the user's folder: bytes, text, a callable of the world giving
    either, or None for an empty folder (names may hold subfolders)."""

    def setup(world: World, user: Path) -> None:
        for name, data in files.items():
            path = user / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                path.mkdir()
                continue
            data = data(world) if callable(data) else data
            path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)

    return setup


@dataclass(frozen=True)
class Seen:
    """What a case showed, for docs/errors.md."""

    case: Case
    command: str  # the command line or library call, with placeholders for paths
    message: str  # the one-line message, with placeholders for paths


SEEN: dict[str, Seen] = {}


def snapshot(*folders: Path) -> dict[Path, str]:
    """sha256 of every file under the folders (the user's files before a case runs)."""
    files: dict[Path, str] = {}
    for folder in folders:
        if folder.is_file():
            files[folder] = hashlib.sha256(folder.read_bytes()).hexdigest()
            continue
        for path in sorted(folder.rglob("*")) if folder.exists() else ():
            if path.is_file() and not path.is_symlink():
                files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def placeholders(text: str, world: World, user: Path) -> str:
    """The text with the case's folder and the world's paths shown as the doc shows them."""
    for path, name in ((user, "."), (world.model, "MODEL"), (world.data, "DATA"), (world.photo, "PHOTO"),
                       *((p, n.upper()) for n, p in world.extra.items()), (world.root, "WORLD")):
        text = text.replace(str(path) + "/", "" if name == "." else name + "/").replace(str(path), name)
    return text


def _run_cli(argv: list[str]) -> tuple[int, str]:
    from open4m.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own errors (usage, unknown option)
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


def _run_process(argv: list[str], cwd: Path) -> tuple[int, str]:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "open4m", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stderr


def _error_line(case: Case, argv: list[str], code: int, stderr: str) -> str:
    verb = argv[0]
    assert "Traceback" not in stderr, f"{case.id}: a traceback reached the user:\n{stderr}"
    assert code == 2, f"{case.id}: exit code {code}, expected 2 (a user error); stderr:\n{stderr}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"open4m {verb}: error: ")]
    # argparse's own errors print the usage first, then `open4m VERB: error: ...`
    assert len(errors) == 1, f"{case.id}: expected one `open4m {verb}: error:` line, got:\n{stderr}"
    return errors[0].split(": error: ", 1)[1]


def run_case(case: Case, world: World, user: Path, monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Run one case in `user` (its own folder, also the working directory) and check what it must show."""
    user.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(user)
    if case.setup is not None:
        case.setup(world, user)
    before = snapshot(user, world.root, *world.extra.values())
    if case.argv is not None:
        argv = [str(a) for a in case.argv(world, user)]
        message = _error_line(case, argv, *_run_cli(argv))
        if case.process:
            assert _error_line(case, argv, *_run_process(argv, user)) == message
        command = "open4m " + shlex.join(argv)
    else:
        with pytest.raises(Open4mError) as info:
            case.call(world, user)
        message = str(info.value)
        assert message and "\n" not in message, f"{case.id}: the message must be one line: {message!r}"
        command = _call_text(case)
    after = snapshot(user, world.root, *world.extra.values())
    lost = sorted(str(p) for p in before if p not in after)
    assert not lost, f"{case.id}: the user's files are gone: {lost}"
    changed = sorted(str(p) for p in before if after[p] != before[p])
    assert not changed, f"{case.id}: the user's files were changed: {changed}"
    assert re.search(case.expect, message), f"{case.id}: message does not match {case.expect!r}:\n{message}"
    seen = Seen(case, placeholders(command, world, user), placeholders(message, world, user))
    SEEN[case.id] = seen
    return seen


def _call_text(case: Case) -> str:
    """The library call a case makes, as the doc shows it: the first line of the call's docstring or name."""
    doc = (case.call.__doc__ or "").strip().splitlines()
    return doc[0] if doc else case.call.__name__


# -- docs/errors.md ------------------------------------------------------------------------------------
HEADER = """# Errors: what open4m says to bad input

Every row is a case of the bad-input battery (`tests/bad_inputs/`): the input a user gave, and the one
line open4m answered. Commands exit with code 2 and print `open4m VERB: error: MESSAGE` on stderr (no
traceback); library calls raise an `open4m.errors.Open4mError` (a `ConfigError`, `DataError`,
`NotFound`, `OutputExists`, `CheckpointError` or `UnknownNameError`, each also the builtin exception
it replaces) with the same message. In every case the files the user had are left byte-identical.
An exception that is not an `Open4mError` is a bug: its traceback is the report to file.

`.` is the folder the command ran in; `MODEL` is a valid model folder, `DATA` a valid dataset folder,
`PHOTO` a valid photo. This page is generated from the battery:
`OPEN4M_WRITE_ERRORS_DOC=1 python -m pytest tests/bad_inputs` rewrites it, and the battery fails
when a message differs from its row here. The cases with a read-only output folder need a user other
than root (root may write anywhere): they are skipped, and have no row, when the tests run as root.
"""


@dataclass(frozen=True)
class Row:
    """One row of docs/errors.md."""

    area: str
    command: str
    message: str


def rows_seen() -> dict[str, Row]:
    """The rows of the cases run in this session, keyed by `what` (unique across the battery)."""
    return {s.case.what: Row(s.case.area, s.command, s.message) for s in SEEN.values()}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(rows: dict[str, Row]) -> str:
    """docs/errors.md from its rows, grouped by area (areas and rows in alphabetical order)."""
    areas: dict[str, list[tuple[str, Row]]] = {}
    for what, row in rows.items():
        areas.setdefault(row.area, []).append((what, row))
    out = [HEADER]
    for area in sorted(areas):
        out.append(f"\n## {area}\n\n| bad input | command | open4m says |\n|---|---|---|")
        out += [f"| {_cell(what)} | `{_cell(row.command)}` | {_cell(row.message)} |"
                for what, row in sorted(areas[area])]
    return "\n".join(out) + "\n"


def documented() -> dict[str, Row]:
    """The rows docs/errors.md shows now, keyed by `what`."""
    rows: dict[str, Row] = {}
    if not ERRORS_DOC.exists():
        return rows
    area = ""
    for line in ERRORS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            area = line[3:].strip()
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0] not in ("bad input", "---"):
            rows[cells[0]] = Row(area, cells[1][1:-1] if cells[1].startswith("`") else cells[1], cells[2])
    return rows
