import json
from dataclasses import replace

import numpy as np
import pytest

from open4m.data.synthetic import generate_sample, seed_for, write_dataset
from open4m.data.synthetic import world
from open4m.cli import main
from open4m.eval.models import EvalModel
from open4m.eval.runner import TASKS, edge_f1, evaluate, load_folder, load_samples, metadata_error, parse_tasks
from open4m.eval.scoring import score


def _score(task, preds, samples, num_classes):
    """The model's metrics and the first baseline's, as `EvalResult.metrics` keeps them."""
    model, baselines = score(task, preds, samples, num_classes)
    return {"model": model, "baseline": next(iter(baselines.values()), {})}


@pytest.fixture(scope="module")
def samples():
    return [generate_sample(seed_for("val", i), 32) for i in range(4)]


def test_parse_tasks():
    assert parse_tasks("all") == list(TASKS)
    assert parse_tasks("depth, det") == ["depth", "det"]
    with pytest.raises(ValueError, match="unknown tasks \\['albedo'\\]"):
        parse_tasks("depth,albedo")
    with pytest.raises(ValueError, match="no task named; choose from depth"):
        parse_tasks("")


def test_edge_f1():
    gt = np.zeros((4, 4), np.uint8)
    gt[0] = 255
    assert edge_f1(gt, gt)["f1"] == pytest.approx(1.0)
    assert edge_f1(np.zeros_like(gt), gt)["f1"] == 0.0
    half = np.zeros_like(gt)
    half[0, :2] = 255
    assert edge_f1(half, gt) == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})


def test_metadata_error_is_relative_and_penalises_missing_fields():
    assert metadata_error({"brightness": 100.0}, {"brightness": 100.0}, ["brightness"]) == 0.0
    assert metadata_error({"brightness": 125.5}, {"brightness": 100.0}, ["brightness"]) == pytest.approx(0.1)
    assert metadata_error({}, {"brightness": 100.0}, ["brightness"]) == 1.0


@pytest.mark.parametrize("task,key,name", [("depth", "abs_rel", "depth"), ("normal", "mean_deg", "normal")])
def test_perfect_dense_predictions_beat_the_baseline(samples, task, key, name):
    res = _score(task, [s[name] for s in samples], samples, 9)
    assert res["model"][key] < 1e-6 < res["baseline"][key]


def test_perfect_segmentation_and_edges(samples):
    seg = _score("semseg", [s["semseg"] for s in samples], samples, 9)
    assert seg["model"]["miou"] == pytest.approx(1.0) and seg["baseline"]["miou"] < 0.5
    edges = _score("edges", [s["canny_edge"] for s in samples], samples, 9)
    assert edges["model"]["f1"] == pytest.approx(1.0) and edges["baseline"]["f1"] == 0.0


def test_sequence_tasks_score_exact_texts_perfectly(samples):
    det = _score("det", [world.parse_text("det", world.sequence_text("det", s)) for s in samples], samples, 9)
    assert det["model"]["map_50"] > 0.99 and det["baseline"]["map_50"] == 0.0
    cap = _score("caption", [s["caption"] for s in samples], samples, 9)
    assert cap["model"]["count_acc"] == 1.0
    pal = _score("palette", [world.sequence_text("color_palette", s) for s in samples], samples, 9)
    assert pal["model"]["distance"] == 0.0 < pal["baseline"]["distance"]
    meta = _score("metadata", [world.sequence_text("metadata", s) for s in samples], samples, 9)
    assert meta["model"]["mae"] < meta["baseline"]["mae"]


def test_garbage_generations_score_as_misses(samples):
    det = _score("det", [None] * len(samples), samples, 9)
    assert det["model"]["parse_rate"] == 0.0 and det["model"]["map_50"] == 0.0
    pal = _score("palette", ["cube"] * len(samples), samples, 9)
    assert pal["model"]["parse_rate"] == 0.0


def test_box_confidence_ranks_detections_and_runner_up_classes_count(samples):
    """A box whose class the model got wrong but weighed second scores as a detection of the right class at
    that probability; confident right boxes rank above unsure wrong ones."""
    truth = [world.parse_text("det", world.sequence_text("det", s)) for s in samples]
    swap = {"cube": "sphere", "sphere": "cube"}

    def guessed(boxes, sure):
        out = []
        for b in boxes:
            wrong = swap.get(b.class_name, "cube")
            out.append(replace(b, class_name=wrong, confidence=0.3, alternatives=((b.class_name, 0.2),)) if not sure
                       else replace(b, confidence=0.9, alternatives=((wrong, 0.05),)))
        return out

    unsure = [guessed(b, sure=False) for b in truth]
    assert _score("det", unsure, samples, 9)["model"]["map_50"] > 0.3
    first_choice_only = [[replace(x, alternatives=()) for x in boxes] for boxes in unsure]
    assert _score("det", first_choice_only, samples, 9)["model"]["map_50"] == 0.0
    mixed = [guessed(b, sure=i % 2 == 0) for i, b in enumerate(truth)]
    plain = [[replace(x, confidence=None, alternatives=()) for x in boxes] for boxes in mixed]
    assert _score("det", mixed, samples, 9)["model"]["map_50"] > _score("det", plain, samples, 9)["model"]["map_50"]


def test_load_folder_reads_what_synth_writes(tmp_path):
    write_dataset(tmp_path, 2, size=32, split="val", progress=False)
    loaded = load_folder(tmp_path)
    assert len(loaded) == 2
    fresh = generate_sample(seed_for("val", 0), 32)
    np.testing.assert_array_equal(loaded[0]["rgb"], fresh["rgb"])
    np.testing.assert_array_equal(loaded[0]["semseg"], fresh["semseg"])
    valid = fresh["depth"] > 0
    np.testing.assert_allclose(loaded[0]["depth"][valid], fresh["depth"][valid], rtol=1e-3, atol=1e-3)
    assert loaded[0]["caption"] == fresh["caption"]
    with pytest.raises(FileNotFoundError, match="open4m synth"):
        load_folder(tmp_path / "missing")


def test_any_aligned_source_feeds_the_runner(tmp_path):
    write_dataset(tmp_path, 2, size=32, split="val", progress=False)
    rendered = load_samples("world:32", limit=2, split="val")
    from_folder = load_samples(tmp_path, limit=1)
    assert len(rendered) == 2 and len(from_folder) == 1
    np.testing.assert_array_equal(rendered[0]["rgb"], from_folder[0]["rgb"])
    assert load_samples("world", limit=1, image_size=48)[0]["rgb"].shape == (48, 48, 3)


def test_the_runner_predicts_through_one_pipeline_per_target_spec(tiny_bundle, samples):
    model = EvalModel.load(tiny_bundle)
    result = evaluate(model, samples[:2], ["depth", "normal", "palette"], batch_size=2, progress=False)
    assert set(result.metrics) == {"depth", "normal", "palette"} and not result.skipped
    pipe = model.pipeline(["rgb@32"], "tok_depth@32")
    assert pipe.model is model.model and pipe.schedule.targets == ("tok_depth@32",)
    assert {k[1] for k in model._pipes} == {"tok_depth@32", "tok_normal@32", "world_palette"}
    direct = pipe({"rgb@32": np.stack([s["rgb"] for s in samples[:2]])}, seed=0)
    np.testing.assert_array_equal(np.stack(result.predictions["depth"]),
                                  world.from_model_form("depth", direct.decoded["tok_depth@32"]))


def test_tasks_the_data_cannot_score_are_skipped_with_the_reason(tiny_bundle, samples):
    bare = [{k: v for k, v in s.items() if k not in ("caption", "det")} for s in samples[:2]]
    result = evaluate(tiny_bundle, bare, ["depth", "det", "caption"], batch_size=2, progress=False)
    assert set(result.metrics) == {"depth"}
    assert result.skipped == {"det": "the data lacks det", "caption": "the data lacks caption"}
    assert "skipped: the data lacks det" in result.table() and result.to_json()["skipped"] == result.skipped
    with pytest.raises(ValueError, match="none of the tasks"):
        evaluate(tiny_bundle, bare, ["det"], progress=False)


def test_a_model_without_the_modalities_is_skipped_task_by_task(tiny_bundle, samples):
    from open4m.generation.pipeline import Pipeline
    from open4m.model import FourM, preset
    from open4m.sources.world import load_tokenizers

    text = load_tokenizers(tiny_bundle)[2]  # registers world_caption with the tiny bundle's vocabulary
    model = FourM(preset("tiny-swiglu_nobias", domains_in=["rgb@224", "world_caption"], domains_out=["world_caption"],
                         dim=32, encoder_depth=1, decoder_depth=1, num_heads=2)).eval()
    em = EvalModel.load(Pipeline("rgb->world_caption", model, {"text": text}))
    assert em.rgb == "rgb@224" and em.sequence_modality("caption") == "world_caption" and em.spec is None
    result = evaluate(em, samples[:1], ["depth", "caption", "depthcaption2rgb"], progress=False)  # rgb resized to 224
    assert set(result.metrics) == {"caption"}
    assert result.skipped["depth"] == "the model lacks a tok_depth output"
    assert result.skipped["depthcaption2rgb"] == "the model lacks a tok_depth input, a tok_rgb output"


def test_eval_cli_scores_a_source_and_says_what_it_skipped(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["eval", "--model", str(tiny_bundle), "--data", "world:32", "--limit", "2", "--tasks", "depth,semseg",
                 "--no-progress", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["num_samples"] == 2 and set(written["metrics"]) == {"depth", "semseg"}
    assert written["data"] == "world:32"
    assert main(["eval", "--model", str(tiny_bundle), "--data", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_world_scenes_are_rendered_with_the_captions_the_model_was_trained_on(tiny_bundle, monkeypatch):
    """The tiny bundle's last stage read captions listing objects left to right: eval, demo and studio render those."""
    from open4m.eval import runner
    from open4m.serve.session import Studio

    ordered = load_samples("world", limit=3, split="val", image_size=32, caption_order="left_to_right")
    assert [s["caption"] for s in ordered] == [
        generate_sample(seed_for("val", i), 32, caption_order="left_to_right")["caption"] for i in range(3)]
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return load_samples(*args, **kwargs)

    monkeypatch.setattr(runner, "load_samples", spy)
    assert main(["eval", "--model", str(tiny_bundle), "--data", "world:32", "--limit", "1", "--tasks", "caption",
                 "--resamples", "0", "--no-progress"]) == 0
    assert seen["caption_order"] == "left_to_right"
    assert Studio(tiny_bundle).example(3).caption == generate_sample(seed_for("test", 3), 32,
                                                                     caption_order="left_to_right")["caption"]


def test_captions_in_another_order_than_the_model_read_are_named_in_a_warning(tiny_bundle, caplog):
    random = [generate_sample(seed_for("val", i), 32, labels=False) for i in range(6)]
    ordered = [generate_sample(seed_for("val", i), 32, labels=False, caption_order="left_to_right") for i in range(6)]
    with caplog.at_level("WARNING", logger="open4m.eval.runner"):
        evaluate(tiny_bundle, ordered, ["caption"], batch_size=6, progress=False)
    assert "left to right" not in caplog.text
    with caplog.at_level("WARNING", logger="open4m.eval.runner"):
        evaluate(tiny_bundle, random, ["caption"], batch_size=6, progress=False)
    assert "captions do not list their objects left to right" in caplog.text
    assert "--caption-order left_to_right" in caplog.text


def test_the_caption_order_is_not_named_for_tasks_that_read_no_caption(tiny_bundle, caplog):
    # `open4m eval --data val64 --tasks depth,normal,semseg` warned that caption -> RGB was scored on
    # captions unlike the model's, though no task read a caption.
    random = [generate_sample(seed_for("val", i), 32) for i in range(6)]
    with caplog.at_level("WARNING", logger="open4m.eval.runner"):
        evaluate(tiny_bundle, random, ["depth"], batch_size=6, resamples=0, progress=False)
    assert "left to right" not in caplog.text
    with caplog.at_level("WARNING", logger="open4m.eval.runner"):
        evaluate(tiny_bundle, random, ["depth", "caption"], batch_size=6, resamples=0, progress=False)
    assert "left to right" in caplog.text and "; caption: scored on captions" in caplog.text



def test_labels_of_another_aspect_ratio_than_their_photo_are_named_in_a_warning(tiny_bundle, samples, caplog):
    # A depth map cut to 4:3 beside a square photo was scored against a stretched prediction without a word.
    from PIL import Image

    halved = [{**s, "depth": np.asarray(Image.fromarray(s["depth"]).resize((16, 16)))} for s in samples[:1]]
    with caplog.at_level("WARNING", logger="open4m.eval.runner"):
        evaluate(tiny_bundle, halved, ["depth"], progress=False)  # another size, the same shape: fine
    assert "aspect ratio" not in caplog.text
    cut = [{**s, "depth": s["depth"][:24]} for s in samples[:1]]
    with caplog.at_level("WARNING", logger="open4m.eval.runner"):
        evaluate(tiny_bundle, cut, ["depth"], progress=False)
    assert "1 label(s) have another aspect ratio than their photo (depth of" in caplog.text
    assert "is 32x24, its photo 32x32" in caplog.text

def test_bootstrap_intervals_bracket_the_headline_metric(samples):
    from open4m.errors import ConfigError
    from open4m.eval.runner import bootstrap_interval

    truths = [s["semseg"] for s in samples]
    noisy = [np.where(np.arange(t.size).reshape(t.shape) % (3 + i) == 0, 0, t).astype(t.dtype)
             for i, t in enumerate(truths)]
    miou = score("semseg", noisy, samples, 9)[0]["miou"]
    ci = bootstrap_interval("semseg", noisy, samples, 9, resamples=50)
    assert ci["metric"] == "miou" and ci["resamples"] == 50 and ci["level"] == 0.95
    assert ci["low"] <= miou <= ci["high"] and ci["low"] < ci["high"]
    assert bootstrap_interval("semseg", noisy, samples, 9, resamples=50) == ci  # seeded
    assert bootstrap_interval("semseg", truths, samples, 9, resamples=0) is None
    assert bootstrap_interval("recon", truths, samples, 9, resamples=10) is None  # no single headline metric
    with pytest.raises(ConfigError, match="resamples must be >= 0"):
        evaluate(None, samples, ["semseg"], resamples=-1)


def test_read_back_shapes_scores_what_an_image_shows_at_any_size():
    from open4m.eval.runner import read_back_shapes
    from open4m.eval.scoring import resize

    model = EvalModel.load(None)
    val = load_samples(limit=4, split="val", image_size=model.image_size, caption_order=model.caption_order)
    photos = [np.asarray(s["rgb"]) for s in val]
    seen, other = read_back_shapes(model, photos, val)
    larger = [resize(p, (96, 96), "rgb") for p in photos]  # resized to the model's side first
    grey = [np.full_like(p, 128) for p in photos]  # an empty room reads back no shapes
    assert read_back_shapes(model, larger, val)[0]["shape_f1"] > read_back_shapes(model, grey, val)[0]["shape_f1"]
    assert seen["shape_f1"] > 0.3 and set(other) == {"shape_f1", "count_acc", "shape_f1_one"}


def test_caption_to_rgb_draws_the_rgb_with_the_guidance_the_world_model_declares(tiny_bundle, samples, monkeypatch):
    """`generation.caption_rgb_guidance` weights the RGB step's conditions (the chain's links are drawn unguided),
    and the weights reach the sampler: the same seed draws another picture than without them."""
    from open4m.eval import runner

    model = EvalModel.load(tiny_bundle)
    captions = [s["caption"] for s in samples[:2]]
    model.forms.spec = replace(model.spec, caption_rgb_chain=("det",))
    plain = runner._rgb_from(model, captions)
    model.forms.spec = replace(model.spec, caption_rgb_guidance={"det": 2.0, "caption": 0.5})
    asked = []
    real_generate = model.generate
    monkeypatch.setattr(model, "generate", lambda inputs, target, **kw: asked.append((target, kw.get("cfg")))
                        or real_generate(inputs, target, **kw))
    guided = runner._rgb_from(model, captions)
    assert asked == [("world_det", None), ("tok_rgb@32", {"world_caption": 0.5, "world_det": 2.0})]
    steps = model.pipeline(["world_caption", "world_det"], "tok_rgb@32", steps=8, temperature=1.0,
                           cfg=asked[1][1]).schedule.steps
    assert {(s.guided, s.cfg_scale, s.cfg_conditions) for s in steps} == {
        (True, (0.5, 2.0), ("world_caption", "world_det"))}
    assert not np.array_equal(plain, guided)
    assert model.caption_rgb_cfg({"world_det": None}) == {"world_det": 2.0}  # boxes alone (the demo's controls)


def test_caption_to_rgb_draws_through_the_chain_the_world_model_declares(tiny_bundle, samples, monkeypatch):
    """A bundle whose spec names a chain (`generation.caption_rgb_chain`) is scored, and shown, through it: each
    link drawn from the caption and the links before it, then RGB from all of them."""
    from open4m.eval import runner

    model = EvalModel.load(tiny_bundle)
    model.forms.spec = replace(model.spec, caption_rgb_chain=("det", "semseg"))
    asked = []
    real_generate = model.generate
    monkeypatch.setattr(model, "generate", lambda inputs, target, **kw: asked.append((tuple(inputs), target))
                        or real_generate(inputs, target, **kw))
    runner._rgb_from(model, [s["caption"] for s in samples[:2]])
    assert asked == [(("world_caption",), "world_det"), (("world_caption", "world_det"), "tok_semseg@32"),
                     (("world_caption", "world_det", "tok_semseg@32"), "tok_rgb@32")]
    result = evaluate(model, samples[:2], ["caption2rgb"], batch_size=2, progress=False)
    assert set(result.metrics) == {"caption2rgb"} and not result.skipped
