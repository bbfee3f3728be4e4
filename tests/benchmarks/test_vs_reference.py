"""benchmarks/vs_reference.py: its table and ratios line, its argument checks, and a tiny run.

The tiny runs are slow (fresh processes building 61 M-parameter models); the one against the official
code also needs its folder (`../shared/reference/setup.sh GIT_DIR DIR`), given as OPEN4M_REFERENCE_DIR.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = "vs_reference"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vs_reference.py"
RATIOS = re.compile(r"^ratios: train_speed=(\S+) train_memory=(\S+) maskgit=(\S+) maskgit_cfg=(\S+) ar=(\S+)$")
TINY_RUN = ["--sizes", "tiny", "--rounds", "1", "--steps", "1", "--warmup", "0", "--reps", "1"]


def result(samples_s: float, peak_mb: float, ms: float, losses: list[float], tokens: list) -> dict:
    names = ("maskgit-1", "maskgit-1 +cfg", "maskgit-8", "maskgit-8 +cfg", "ar-32")
    cases = {name: {"ms": ms * (2 if "cfg" in name else 1), "tokens": tokens} for name in names}
    return {"train": {"samples_s": samples_s, "peak_mb": peak_mb, "step_s": 8 / samples_s, "losses": losses},
            "generate": {"cases": cases, "peak_mb": peak_mb}}


def test_table_and_ratios_line(bench):
    res = {"ours": result(2.0, 600.0, 50.0, [9.4, 9.3], [[1, 2]]),
           "reference": result(1.0, 1000.0, 100.0, [9.4, 9.3 + 2e-5], [[1, 3]])}
    rows = bench.rows_of("tiny", res)
    assert [r["what"] for r in rows][:2] == ["train samples/s", "train peak RSS MB"]
    by = {r["what"]: r for r in rows}
    assert by["train samples/s"]["ratio"] == pytest.approx(2.0)
    assert by["train peak RSS MB"]["ratio"] == pytest.approx(0.6)
    assert by["maskgit-8 +cfg ms/img"]["ratio"] == pytest.approx(2.0)
    assert by["ar-32 ms/img"]["same"] == "50.0% of tokens"  # [1, 2] vs [1, 3]
    assert by["train samples/s"]["same"] == "max |dloss| 2.0e-05"
    line = bench.ratios_line(rows, "tiny")
    assert [float(x) for x in RATIOS.match(line).groups()] == pytest.approx([2.0, 0.6, 2.0, 2.0, 2.0])
    assert len(bench.table(rows).splitlines()) == 2 + len(rows)


def test_ours_only_rows_have_nan_ratios(bench):
    rows = bench.rows_of("base", {"ours": result(2.0, 600.0, 50.0, [9.4], [[1]])})
    assert all(r["ref"] is None and math.isnan(r["ratio"]) for r in rows)
    assert all(math.isnan(float(x)) for x in RATIOS.match(bench.ratios_line(rows, "base")).groups())


def test_best_of_rounds_keeps_fastest_and_lowest_memory(bench):
    a, b = result(1.0, 900.0, 80.0, [1.0], [[1]]), result(2.0, 1000.0, 60.0, [2.0], [[1]])
    train = bench.keep_best(a["train"], b["train"], "train")
    assert (train["samples_s"], train["peak_mb"], train["losses"]) == (2.0, 900.0, [1.0])
    gen = bench.keep_best(a["generate"], b["generate"], "generate")
    assert gen["cases"]["maskgit-8"]["ms"] == 60.0 and gen["peak_mb"] == 900.0
    assert bench.gen_case("maskgit-8 +cfg") == (8, True) and bench.gen_case("maskgit-1") == (1, False)


@pytest.mark.parametrize("argv, message", [
    ([], "--reference DIR is required"),
    (["--reference", "/nonexistent/ref"], "is not a reference set up by setup.sh"),
    (["--ours-only", "--sizes", "huge"], "unknown size"),
    (["--ours-only", "--rounds", "0"], "must be >= 1"),
])
def test_bad_arguments_are_one_line_errors(argv, message):
    out = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True)
    assert out.returncode == 2
    assert message in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("settings", [[], ["--precision", "bf16", "--memory", "lean"]])
def test_runs_on_tiny_ours_only(settings):
    out = subprocess.run([sys.executable, str(SCRIPT), "--ours-only", *TINY_RUN, *settings], capture_output=True,
                         text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert RATIOS.match(lines[-1]), lines[-1]
    assert sum(line.startswith("tiny ") for line in lines) == 7  # 2 training rows, 5 generation cases


@pytest.mark.slow
def test_runs_on_tiny_against_the_reference():
    ref = os.environ.get("OPEN4M_REFERENCE_DIR")
    if not ref or not (Path(ref) / "venv" / "bin" / "python").exists():
        pytest.skip("no official reference: set OPEN4M_REFERENCE_DIR to a folder made by "
                    "../shared/reference/setup.sh GIT_DIR DIR")
    out = subprocess.run([sys.executable, str(SCRIPT), "--reference", ref, *TINY_RUN], capture_output=True, text=True,
                         check=True)
    lines = out.stdout.strip().splitlines()
    ratios = [float(x) for x in RATIOS.match(lines[-1]).groups()]
    assert all(math.isfinite(x) and x > 0 for x in ratios)
    rows = [line for line in lines if line.startswith("tiny ")]
    assert len(rows) == 7 and all(line.endswith("yes") for line in rows if "ms/img" in line)
