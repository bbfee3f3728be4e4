"""benchmarks/atomic_writes.py on a few files: a rate per quarter, every file written; no timings asserted."""

from __future__ import annotations

BENCHMARK = "atomic_writes"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it


def test_quarters_gives_four_rates_and_writes_every_file(bench, tmp_path):
    for listing in (False, True):
        folder = tmp_path / str(listing)
        folder.mkdir()
        rates = bench.quarters(folder, 40, 8, listing)
        assert len(rates) == 4 and all(r > 0 for r in rates)
        assert sorted(p.name for p in folder.iterdir()) == [f"scene_{i:08d}.npy" for i in range(40)]
