import json

import pytest

from open4m.cli import main
from open4m.demo.run import run_demo
from open4m.sources.world import MissingModelError


def test_demo_writes_grid_task_pngs_and_metrics(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--model", str(tiny_bundle), "--out", str(out), "--scenes", "2", "--no-progress",
                 "--tasks", "depth,normal,semseg,edges,palette,recon,depthcaption2rgb"])
    assert code == 0
    for name in ("grid.png", "controls.png", "depth.png", "normal.png", "semseg.png", "edges.png", "palette.png",
                 "depthcaption2rgb.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] == 2 and metrics["split"] == "test" and "skipped" not in metrics
    assert set(metrics["metrics"]["depth"]) == {"model", "baseline"}
    table = capsys.readouterr().out
    assert "abs_rel" in table and "recon/rgb" in table
    # Run again into the same folder: it holds only the demo's own results, which are rewritten ...
    assert main(["demo", "--model", str(tiny_bundle), "--out", str(out), "--scenes", "1", "--no-progress",
                 "--tasks", "depth"]) == 0
    assert json.loads((out / "metrics.json").read_text())["num_samples"] == 1
    # ... but a file of the user's there makes it refuse (nothing a user saved is replaced).
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--model", str(tiny_bundle), "--out", str(out), "--scenes", "1", "--no-progress",
                 "--tasks", "depth"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_missing_bundle_says_how_to_train_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out (open4m-demo) is made in the working folder
    with pytest.raises(MissingModelError, match="open4m demo --train"):
        run_demo(tmp_path, tmp_path / "out", scenes=1, progress=False)
    assert main(["demo", "--model", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "open4m demo --train" in err and "Traceback" not in err
