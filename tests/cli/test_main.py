"""The `open4m` entry points: instant help without torch, `python -m`, exit codes, errors, logging."""

from __future__ import annotations

import ast
import importlib
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import open4m.cli
from open4m.cli import build_parser, main
from open4m.cli.commands import info

CLI_DIR = Path(open4m.cli.__file__).parent
VERBS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]

# Runs `python -m open4m ARGS` in-process (so sys.modules can be inspected after it) and prints the heavy
# modules it imported.
_PROBE = """
import runpy, sys
sys.argv = ["open4m", *sys.argv[1:]]
try:
    runpy.run_module("open4m", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "PIL", "safetensors", "huggingface_hub"))
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
"""


def _run(*args: str, module: str = "open4m") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)


def _heavy_imports(*args: str) -> tuple[str, list[str]]:
    run = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120)
    line = [x for x in run.stderr.splitlines() if x.startswith("HEAVY:")][-1]
    return run.stdout, [m for m in line[len("HEAVY:"):].split(",") if m]


@pytest.mark.parametrize("args", [("--help",), ("train", "--help")] + [(v, "--help") for v in VERBS if v != "train"])
def test_help_imports_no_torch(args):
    out, heavy = _heavy_imports(*args)
    assert "usage: open4m" in out
    assert heavy == [], f"`open4m {' '.join(args)}` imported {heavy[:8]}"


def test_python_dash_m_open4m_and_open4m_cli():
    run = _run("info", "--preset", "4M-7")
    assert run.returncode == 0 and "Modalities (" in run.stdout and "FourM presets" in run.stdout
    run = _run("--help", module="open4m.cli")  # what `torchrun ... -m open4m.cli train` runs
    assert run.returncode == 0 and "train-tokenizer" in run.stdout


def test_no_verb_prints_help_and_exits_1(capsys):
    assert main([]) == 1
    assert "usage: open4m" in capsys.readouterr().out
    assert _run().returncode == 1


@pytest.mark.parametrize("argv, expected", [
    (["show", "--data", "{tmp}/missing", "--out", "{tmp}/sheet.png"], "missing does not exist"),  # a missing folder
    (["train-tokenizer", "--kind", "vqvae", "--modality", "dpeth", "--data", "{tmp}", "--out", "{tmp}/o"],
     "unknown modality 'dpeth'. Did you mean 'depth'"),  # an unknown modality, with the close names
    (["label", "--data", "{tmp}", "-m", "canny_edgee"], "did you mean canny_edge or sam_edge?"),
    (["synth", "--out", "{tmp}/w", "--n", "0"], "argument --n: 0 is too small; give a whole number >= 1"),  # parsing
    (["generate", "--model", "{tmp}/m", "--input", "rgb", "--target", "depth", "--out", "{tmp}/o"],
     "--input 'rgb': write NAME=VALUE"),
    (["generate", "--model", "{tmp}/nothing", "--input", "rgb=x.png", "--target", "depth", "--out", "{tmp}/o"],
     "no FourM at"),
    (["tokenize", "--data", "{tmp}", "--modality", "rgb", "--tokenizer", "{tmp}/tok", "--n-crops", "0"],
     "argument --n-crops: 0 is too small"),
    (["train", "optim.bl=1"], "optim.bl"),  # an unknown recipe key
    (["eval", "--tasks", "depht"], "--tasks 'depht'"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # a value refused while parsing: argparse exits with 2
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("open4m ")]
    assert len(lines) == 1 and lines[0].startswith(f"open4m {argv[0]}: error: "), err
    assert expected in lines[0] and "Traceback" not in err


def test_user_error_in_a_fresh_process_has_no_traceback(tmp_path):
    run = _run("show", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "sheet.png"))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"open4m show: error: dataset root {tmp_path / 'missing'} does not exist"]


@pytest.mark.parametrize("bug", [RuntimeError("a bug"), ValueError("a bug"), KeyError("a bug"), FileNotFoundError("x")])
def test_bugs_keep_their_traceback(monkeypatch, bug):
    """Only `Open4mError`s are user errors: a builtin raised by a handler propagates (the old CLI hid these)."""

    def broken(args):
        raise bug

    monkeypatch.setattr(info, "run", broken)
    with pytest.raises(type(bug)):
        main(["info"])


def test_bug_in_a_fresh_process_shows_the_traceback():
    code = ("import sys; from open4m.cli import main; from open4m.cli.commands import info\n"
            "def broken(args): raise RuntimeError('a genuine bug')\n"
            "info.run = broken\nsys.exit(main(['info']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" in run.stderr and "RuntimeError: a genuine bug" in run.stderr


def test_logging_info_by_default_quiet_and_verbose(monkeypatch, capsys):
    log = logging.getLogger("open4m.some.module")

    def chatty(args):
        log.debug("debug detail")
        log.info("progress note")
        log.warning("a warning")
        return 0

    monkeypatch.setattr(info, "run", chatty)
    assert main(["info"]) == 0
    err = capsys.readouterr().err
    assert "progress note\n" in err and "a warning" in err and "debug detail" not in err
    for argv in (["-q", "info"], ["info", "--quiet"]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "progress note" not in err and "a warning" in err
    for argv in (["-v", "info"], ["info", "--verbose"]):
        assert main(argv) == 0
        assert "debug detail" in capsys.readouterr().err
    assert logging.getLogger("open4m").handlers == []  # main leaves the caller's logging as it was


def test_cli_imports_no_private_library_names():
    """The CLI uses the library's public API only (no `from open4m.x import _helper`)."""
    private = []
    for path in sorted(CLI_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("open4m"):
                if not node.module.startswith("open4m.cli"):
                    private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.ImportFrom) and node.level > 2:  # `from ...x` reaches out of the cli package
                private.append(f"{path.name}: relative import of the library")
    assert private == []


@pytest.mark.parametrize("verb", ["train", "finetune"])
def test_overrides_after_an_option_are_overrides_too(monkeypatch, verb):
    """`open4m train RECIPE a=b -q c=d`: argparse fills the overrides from one run of words, so the words after
    `-q` (or `--overwrite`) were refused as 'unrecognized arguments' although -q may stand after the verb."""
    import importlib

    module = importlib.import_module(f"open4m.cli.commands.{verb}")
    seen = {}
    monkeypatch.setattr(module, "run", lambda args: seen.update(vars(args)) or 0)
    assert main([verb, "recipe.yaml", "train.steps=2", "-q", "optim.lr=1e-3", "--overwrite", "log.every=1"]) == 0
    assert seen["recipe"] == "recipe.yaml" and seen["overwrite"] and seen["log_level"] == logging.WARNING
    assert seen["overrides"] == ["train.steps=2", "optim.lr=1e-3", "log.every=1"]


def test_library_warnings_print_as_one_line_naming_the_verb(tmp_path):
    """A photo resized for the model is a `warnings.warn` in the library; the command line shows its message as
    `open4m VERB: warning: ...`, not Python's `file.py:LINE: UserWarning:` and the source line."""
    from PIL import Image

    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    model = Path(open4m.__file__).parent / "assets" / "world64"
    run = _run("-q", "generate", "--model", str(model), "--input", f"rgb={tmp_path / 'one.png'}", "--target", "depth",
               "--steps", "1", "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert "open4m generate: warning: rgb input of 1x1 resized to 64x64" in run.stderr
    assert "UserWarning" not in run.stderr and ".py:" not in run.stderr


def test_main_leaves_the_callers_warning_format_as_it_was():
    import warnings

    before = warnings.formatwarning
    assert main(["info"]) == 0
    assert warnings.formatwarning is before


def test_quiet_generate_prints_its_results_only(tmp_path, capsys):
    """-q means results only: the files written (and texts generated), not the decoding schedule or a progress bar."""
    from PIL import Image

    from open4m.sources.world import SHIPPED, load_tokenizers

    load_tokenizers(SHIPPED)  # registers its modalities (another world model of the session may have other ones)
    Image.new("RGB", (64, 64), (90, 120, 150)).save(tmp_path / "scene.png")
    argv = ["generate", "--model", str(SHIPPED), "--input", f"rgb={tmp_path / 'scene.png'}", "--target", "depth",
            "--steps", "1"]
    assert main(["-q", *argv, "--out", str(tmp_path / "quiet")]) == 0
    quiet = capsys.readouterr()
    assert quiet.out.strip().splitlines() == [f"wrote 3 files to {tmp_path / 'quiet'}"]
    assert "generating" not in quiet.err
    assert main([*argv, "--out", str(tmp_path / "loud")]) == 0
    assert "maskgit, 1 step(s)" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["eval", "demo"])
def test_quiet_turns_progress_bars_off(monkeypatch, verb):
    module = importlib.import_module(f"open4m.cli.commands.{verb}")
    seen = []
    monkeypatch.setattr(module, "run", lambda args: seen.append(args.no_progress) or 0)
    assert main(["-q", verb]) == 0 and main([verb]) == 0 and main([verb, "--no-progress"]) == 0
    assert seen == [True, False, True]
