"""The battery itself: big enough, every id and description unique, every verb covered."""

from conftest import all_cases

from open4m.cli import COMMAND_MODULES


def test_the_battery_has_at_least_80_distinct_cases():
    cases = all_cases()
    assert len(cases) >= 80, f"{len(cases)} cases; the battery promises at least 80"
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    whats = [c.what for c in cases]  # docs/errors.md keys its rows by it
    assert len(set(whats)) == len(whats), sorted(w for w in whats if whats.count(w) > 1)


def test_every_verb_has_a_case(world, tmp_path):
    verbs = {m.rsplit(".", 1)[1].replace("_", "-") for m in COMMAND_MODULES}
    covered = {c.argv(world, tmp_path)[0] for c in all_cases() if c.argv is not None}
    assert verbs <= covered, f"verbs without a bad-input case: {sorted(verbs - covered)}"
