"""`open4m eval` on a folder with ground truth at other resolutions than the model's input."""

import json

import numpy as np

from open4m.cli import main
from open4m.data.codecs import encode
from open4m.data.synthetic import FILE_EXT, generate_sample, seed_for

SIZES = [(40, 56), (48, 48), (36, 44)]  # (H, W): none is the tiny model's 32x32, two are not square


def write_folder(root, sizes=SIZES, skip=(), edit=None):
    """World scenes written as a plain labelled folder: rgb + depth, normal, semseg, det, caption."""
    for i, size in enumerate(sizes):
        sample = generate_sample(seed_for("val", i), size, labels=False)
        if edit:
            edit(i, sample)
        for modality in ("rgb", "depth", "normal", "semseg", "det", "caption"):
            if (i, modality) in skip:
                continue
            path = root / modality / f"photo_{i}{FILE_EXT[modality]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(sample[modality], FILE_EXT[modality], modality))
    return root


def test_eval_scores_a_labelled_folder_at_its_own_resolutions(tiny_bundle, tmp_path, capsys):
    data = write_folder(tmp_path / "photos", skip={(2, "normal")})
    out = tmp_path / "metrics.json"
    code = main(["eval", "--model", str(tiny_bundle), "--data", str(data), "--tasks", "depth,normal,semseg,det,caption",
                 "--no-progress", "--json", str(out)])
    table = capsys.readouterr().out
    assert code == 0
    assert f"on {data}: 3 samples" in table
    for row in ("depth                 3  scaled_abs_rel", "normal                2  mean_deg",
                "semseg                3  miou", "det                   3  map_50_95", "caption               3  cider_d"):
        assert row in table, table
    assert "1 = mean depth of the set, 2 = median depth per image" in table and "one full-image box" in table
    written = json.loads(out.read_text())
    assert written["num_samples"] == 3 and written["samples_per_task"]["normal"] == 2
    assert set(written["baselines"]["det"]) == {"no boxes", "one full-image box of the commonest class"}
    depth = written["metrics"]["depth"]
    assert 0 <= depth["model"]["scaled_delta1"] <= 1 and depth["baseline"] == written["baselines"]["depth"]["mean depth of the set"]
    ci = written["intervals"]["semseg"]  # the default 100 bootstrap draws of the scored samples
    assert ci["metric"] == "miou" and ci["resamples"] == 100 and 0 <= ci["low"] <= ci["high"] <= 1
    assert "95% CI [" in table


def test_predictions_are_scored_at_the_ground_truth_resolution(tiny_bundle, tmp_path):
    from open4m.eval.runner import _fitted, evaluate, load_folder

    samples = load_folder(write_folder(tmp_path / "photos"))
    assert [s["depth"].shape for s in samples] == SIZES
    result = evaluate(tiny_bundle, samples, ["depth", "normal", "semseg"], batch_size=2, progress=False)
    assert {np.shape(p)[:2] for p in result.predictions["depth"]} == {(32, 32)}  # the model's size
    fitted = _fitted("normal", result.predictions["normal"], samples)
    assert [f.shape for f in fitted] == [s["normal"].shape for s in samples]
    assert np.allclose(np.linalg.norm(fitted[0], axis=-1), 1, atol=1e-4)
    assert [f.dtype for f in _fitted("semseg", result.predictions["semseg"], samples)] == [np.uint8] * 3


def test_labels_that_cannot_be_scored_are_skipped_with_the_reason(tiny_bundle, tmp_path, capsys):
    def edit(i, sample):
        for inst in sample["det"]["instances"]:  # pixel boxes instead of 4M's normalised ones
            inst["boxes"] = [v * 48 for v in inst["boxes"]]
        sample["semseg"][:2] = 40  # a class the model's 9-class tokenizer does not know
        sample["semseg"][2:4] = 255  # void: ignored

    data = write_folder(tmp_path / "photos", edit=edit, skip={(i, "caption") for i in range(3)})
    assert main(["eval", "--model", str(tiny_bundle), "--data", str(data), "--tasks", "depth,semseg,det,caption",
                 "--no-progress", "--limit", "2"]) == 0
    table = capsys.readouterr().out
    assert "det               skipped: the data's det boxes reach" in table and "divided by the image" in table
    assert "semseg            skipped: the data's semseg holds class 40" in table
    assert "caption           skipped: the data lacks caption" in table
    assert "depth                 2  abs_rel" in table


def test_a_folder_without_any_ground_truth_of_the_tasks_is_one_line(tiny_bundle, tmp_path, capsys):
    data = write_folder(tmp_path / "photos", skip={(i, m) for i in range(3) for m in ("depth", "normal")})
    assert main(["eval", "--model", str(tiny_bundle), "--data", str(data), "--tasks", "depth,normal",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "none of the tasks" in err and "the data lacks depth" in err and "Traceback" not in err
