"""The `bench` fixture: the benchmark script a test module names in `BENCHMARK`, loaded as a module.

Benchmark scripts are files, not a package. The module is registered in `sys.modules` while in use (dataclasses
look their module up by name), with benchmarks/ on `sys.path` (scripts import their siblings, as when run
directly).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest):
    name = request.module.BENCHMARK
    spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))
        sys.modules.pop(spec.name, None)
