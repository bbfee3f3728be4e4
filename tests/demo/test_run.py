import json

from open4m.cli import main


def test_demo_writes_grid_task_pngs_and_metrics(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--model", str(tiny_bundle), "--out", str(out), "--scenes", "2", "--no-progress",
                 "--tasks", "depth,normal,semseg,edges,palette,recon,depthcaption2rgb"])
    assert code == 0
    for name in ("grid.png", "depth.png", "normal.png", "semseg.png", "edges.png", "palette.png",
                 "depthcaption2rgb.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] == 2 and metrics["split"] == "test"
    assert set(metrics["metrics"]["depth"]) == {"model", "baseline"}
    table = capsys.readouterr().out
    assert "abs_rel" in table and "recon/rgb" in table


def test_eval_rejects_unknown_tasks(tiny_bundle, capsys):
    assert main(["eval", "--model", str(tiny_bundle), "--tasks", "depth,albedo"]) == 2
    assert "unknown tasks ['albedo']" in capsys.readouterr().err
