"""The world recipe (`open4m demo --train`): its config, the bundle it writes, and bundles of the earlier layout."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from open4m.data.synthetic import generate_sample, seed_for
from open4m.data.synthetic.world import IMAGE_MODALITIES
from open4m.eval.models import EvalModel
from open4m.recipes.world import convert_bundle, load_recipe
from open4m.sources.world import SHIPPED, MissingModelError, bundle_missing


def test_recipe_sections_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {}\nmodel: {}\n")
    with pytest.raises(ValueError, match="unknown config key 'model'"):
        load_recipe(bad)
    with pytest.raises(FileNotFoundError, match="--config"):
        load_recipe(tmp_path / "nope.yaml")


def test_patch_sizes_that_do_not_divide_the_image_are_refused_when_the_recipe_is_read(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {image_size: 64, rgb_patch_size: 6}\n")
    with pytest.raises(ValueError, match=r"world.rgb_patch_size=6 does not divide world.image_size=64"):
        load_recipe(bad)


@pytest.mark.parametrize("recipe, error", [
    ("stages: [{optim: {lr: 1.0e-3}}, {optim: {lrr: 1.0e-3}}]", r"stages\[1\]: unknown config key 'optim.lrr'"),
    ("stages: [5]", r"stages\[0\] must be a mapping"),
    ("stages: [{scenes: 0}]", r"stages\[0\].scenes=0: give a whole number"),
    ("stages: [{model: {init_from: x.safetensors}}]", r"stages\[0\] sets model.init_from.*previous stage's weights"),
    ("stages: [{caption_order: diagonal}]", r"stages\[0\].caption_order: unknown caption order 'diagonal'; choose one"),
    ("tokenizers: {per_modality: {rgbb: {arch: {dim: 8}}}}",
     r"per_modality.rgbb: 'rgbb' is no image modality of the world; choose one of rgb"),
    ("tokenizers: {per_modality: {rgb: {codebook_size: 8}}}", r"per_modality.rgb must be a mapping of arch, train"),
    ("tokenizers: {per_modality: {depth: {train: {stepz: 3}}}}",
     r"per_modality.depth: unknown config key 'train.stepz'; did you mean 'train.steps'"),
    # a KeyError traceback once the world was rendered, with the first tokenizer folder left behind
    ("tokenizers: {codebook_size: {rgbb: 64, depth: 32, normal: 32, semseg: 32, canny_edge: 32}}",
     r"tokenizers.codebook_size needs one size per image modality .*; missing rgb; unknown 'rgbb' \(did you mean "
     r"'rgb'\?\)"),
    ("tokenizers: {codebook_size: {rgb: 64}}", r"codebook_size .*; missing depth, normal, semseg, canny_edge$"),
    ("tokenizers: {codebook_size: {rgb: 0, depth: 32, normal: 32, semseg: 32, canny_edge: 32}}",
     r"codebook_size: \{'rgb': 0\} must be whole numbers >= 1"),
    ("tokenizers: {arch: {dim: 32, depht: 1, heads: 2}}",
     r"tokenizers.arch needs the ViT width, depth and heads .*; missing depth; unknown 'depht' \(did you mean"),
    # a warmup as long as its run: once refused by the trainer, after the world was rendered and tokenized
    ("fourm: {optim: {warmup: 200}, train: {steps: 100}}", r"fourm.optim.warmup=200.* its run of 100 steps"),
    ("fourm: {optim: {warmup: 20}, train: {steps: 100}}\nstages: [{train: {steps: 10}}]",
     r"stages\[0\].optim.warmup=20.* its run of 10 steps"),
    ("tokenizers: {per_modality: {depth: {train: {steps: 10}}}}",
     r"tokenizers.train.warmup \(depth's tokenizer\)=20.* its run of 10 steps"),
    # shares that leave no all-to-all part: once refused when that stage began, after the earlier stages trained
    ("fourm: {data: {mixture: rgb-to-all, rgb_share: 0.3}}\nstages: [{data: {biased_shares: {world_det: 0.75}}}]",
     r"stages\[0\]: data: rgb_share 0.3 plus the biased_shares \{'world_det': 0.75\} leave no all-to-all"),
    ("generation: {caption_rgb_guidance: {det: 2.0}}", r"generation.caption_rgb_guidance: 'det' is no condition of "
                                                      r"caption -> RGB; weight one of caption \(a key drawn"),
    ("generation: {caption_rgb_chain: [boxes]}", r"generation.caption_rgb_chain=\['boxes'\]: "
                                                r"'boxes' cannot be drawn .* from depth, normal, semseg, canny_edge, det"),
])
def test_a_wrong_stage_or_tokenizer_setting_is_refused_when_the_recipe_is_read(tmp_path, recipe, error):
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe + "\n")
    with pytest.raises(ValueError, match=error):
        load_recipe(bad)


def test_one_modalitys_tokenizer_trains_with_its_own_settings_and_the_rest_with_the_common_ones(tiny_bundle):
    from open4m.tokenizers import VQVAE

    tokenizers = tiny_bundle / "tokenizers"
    rgb, depth = (VQVAE.from_pretrained(tokenizers / f"tok_{b}.safetensors").config for b in ("rgb", "depth"))
    assert (rgb.enc_dim, rgb.dec_dim, rgb.enc_depth) == (48, 48, 1)  # its arch.dim, the common depth
    assert (depth.enc_dim, depth.dec_dim) == (32, 32)
    runs = tiny_bundle.parent / "tokenizers" / "runs"
    steps = {b: yaml.safe_load((runs / b / "config.yaml").read_text())["train"]["steps"] for b in ("rgb", "depth")}
    assert steps == {"rgb": 4, "depth": 3}
    card = (tiny_bundle / "README.md").read_text()  # the card reads the sizes from the tokenizers, not the recipe
    assert "rgb: vit encoder 1 block(s) dim 48, vit decoder 1 block(s) dim 48," in card
    assert "depth / normal / semseg / canny_edge: vit encoder 1 block(s) dim 32, vit decoder 1 block(s) dim 32," in card


def test_a_stage_changes_only_the_settings_it_names(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("fourm: {optim: {lr: 2.0e-3, warmup: 10}, train: {steps: 50}}\n"
                      "stages: [{optim: {lr: 6.0e-4}, train: {steps: 20, seed: 1}}]\n")
    stage = load_recipe(recipe).stage(2)
    assert (stage.optim.lr, stage.optim.warmup, stage.train.steps, stage.train.seed) == (6e-4, 10, 20, 1)
    assert load_recipe(recipe).stage(1).optim.lr == 2e-3


def test_a_world_caption_order_that_does_not_exist_is_refused_when_the_recipe_is_read(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {caption_order: top_down}\n")
    with pytest.raises(ValueError, match=r"unknown caption order 'top_down'; choose one of \['random', 'left_to_right'\]"):
        load_recipe(bad)


def test_a_stage_with_its_own_caption_order_trains_on_those_captions_and_the_bundle_records_it(tiny_bundle):
    """The tiny recipe's stage 2 lists caption objects left to right; stage 1 kept the random order."""
    run = tiny_bundle.parent
    first = sorted((run / "tokens" / "world_caption").glob("*.npy"))
    second = {p.name: p for p in (run / "tokens-30-left_to_right" / "world_caption").glob("*.npy")}
    pairs = [(np.load(p), np.load(second[p.name])) for p in first]
    assert all(len(a) == len(b) and sorted(a) == sorted(b) for a, b in pairs)  # the same words, in another order
    assert sum(not np.array_equal(a, b) for a, b in pairs) >= 5
    assert json.loads((tiny_bundle / "world.json").read_text())["spec"]["caption_order"] == "left_to_right"
    model = EvalModel.load(tiny_bundle)
    assert model.caption_order == "left_to_right"
    card = (tiny_bundle / "README.md").read_text()
    assert "captions (objects listed left to right in the image)" in card and "`caption_order` left_to_right" in card


def test_shipped_recipe_is_complete():
    recipe = load_recipe()
    assert recipe.world.image_size % recipe.world.patch_size == 0


def test_recipe_writes_a_complete_bundle(tiny_bundle):
    assert bundle_missing(tiny_bundle) == []
    info = json.loads((tiny_bundle / "world.json").read_text())
    assert info["train_scenes"] == 24 and set(info["timings"]) == {"render_s", "tokenizers_s", "fourm_s"}
    assert info["device"] == "cpu"
    card = (tiny_bundle / "README.md").read_text()  # written from world.json: no eval yet, so no metrics
    assert f"{info['timings']['fourm_s'] / 60:.0f} minutes of FourM training on the CPU" in card
    assert "24 scenes of the `train` split" in card and "## Metrics" not in card
    assert 'open4m.pipeline("rgb->depth", model=FOLDER)' in card
    # the tiny recipe's RGB input uses 4 px patches over 8 px token grids: both reach the bundle and its card
    assert info["spec"]["rgb_patch_size"] == 4 and info["spec"]["patch_size"] == 8
    assert "4 px patches: 8x8 tokens" in card and "(4x4 tokens)" in card
    with safe_open(str(tiny_bundle / "model.safetensors"), "pt") as f:
        key = next(k for k in f.keys() if k.startswith("encoder_embeddings.rgb@32.") and k.endswith("proj.weight"))
        assert f.get_slice(key).get_shape()[1] == 3 * 4 * 4


def test_a_stage_restarts_from_the_previous_stages_ema_weights_and_the_bundle_is_the_last_stages(tiny_bundle):
    from safetensors.torch import load_file

    run = tiny_bundle.parent
    stage2 = run / "fourm-2"
    recorded = yaml.safe_load((stage2 / "config.yaml").read_text())
    assert recorded["model"]["init_from"] == str(run / "fourm" / "model_ema.safetensors")
    assert (recorded["optim"]["lr"], recorded["train"]["steps"], recorded["train"]["seed"]) == (1e-3, 2, 1)
    stage_tokens = run / "tokens-30-left_to_right"  # the stage's own scenes and caption order, the run's tokenizers
    assert recorded["data"]["source"] == str(stage_tokens)
    assert len(list((stage_tokens / "tok_depth@32").glob("*.npy"))) == 30
    assert len(list((run / "tokens" / "tok_depth@32").glob("*.npy"))) == 24
    steps = [json.loads(line)["step"] for line in (stage2 / "metrics.jsonl").read_text().splitlines()
             if '"train/loss"' in line]
    assert steps == [1, 2]  # a fresh schedule, not a resume of the first stage
    shipped, last = load_file(tiny_bundle / "model.safetensors"), load_file(stage2 / "model_ema.safetensors")
    first = load_file(run / "fourm" / "model_ema.safetensors")
    key = next(k for k in shipped if k.startswith("encoder.") and k.endswith("weight"))
    assert torch.equal(shipped[key], last[key].half()) and not torch.equal(shipped[key], first[key].half())
    card = (tiny_bundle / "README.md").read_text()
    assert ("Stage 2 restarts from stage 1's EMA weights with a fresh AdamW on 30 train scenes: 2 steps, lr 0.001"
            in card)
    assert "24 scenes of the `train` split (seeds 0..23; later FourM stages: 30 (seeds 0..29))" in card


def test_a_stage_may_deepen_the_model_and_its_new_block_starts_as_identity(tiny_recipe, tmp_path):
    from safetensors.torch import load_file

    from open4m.recipes.world import run_recipe

    stages = "stages: [{optim: {lr: 1.0e-3}, train: {steps: 2, seed: 1}, scenes: 30, caption_order: left_to_right}]"
    assert stages in tiny_recipe
    recipe = tmp_path / "deeper.yaml"
    recipe.write_text(tiny_recipe.replace(stages, "stages: [{model: {arch: {decoder_depth: 2}}, train: {steps: 2}}]"))
    bundle = run_recipe(recipe, tmp_path / "run", workers=1, progress=False)
    config = json.loads((bundle / "config.json").read_text())
    assert (config["encoder_depth"], config["decoder_depth"]) == (1, 2)
    assert "1 encoder + 2 decoder blocks" in (bundle / "README.md").read_text()
    first, second = (load_file(tmp_path / "run" / stage / "model.safetensors") for stage in ("fourm", "fourm-2"))
    assert "decoder.1.mlp.fc2.weight" not in first
    # two AdamW steps from zero move a weight by about the rate each; a randomly initialised block starts at ~0.02
    assert second["decoder.1.mlp.fc2.weight"].abs().max() < 5e-3 < second["decoder.1.mlp.fc1.weight"].abs().max()


def test_a_rerun_of_a_finished_run_with_stages_trains_nothing_and_keeps_its_training_times(tiny_bundle, tmp_path):
    from open4m.recipes.world import is_recipe_folder, run_recipe

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle.parent, run, ignore=shutil.ignore_patterns("model"))
    assert is_recipe_folder(run)
    before = {p: p.stat().st_mtime_ns for p in (run / "fourm-2" / "checkpoints").rglob("*")}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.loads((tiny_bundle / "world.json").read_text())["recipe"])
    bundle = run_recipe(recipe, run, workers=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (run / "fourm-2" / "checkpoints").rglob("*")} == before
    assert bundle_missing(bundle) == []
    # the card's training times are the engine's counts over the runs, not this rerun's few seconds
    first, again = (json.loads((b / "world.json").read_text())["timings"] for b in (tiny_bundle, bundle))
    assert again["fourm_s"] == first["fourm_s"] > 0 and again["tokenizers_s"] == first["tokenizers_s"] > 0

    # a later stage's token folder made by other settings is refused on entry, like the first one's
    from open4m.errors import ConfigError

    done = run / "tokens-30-left_to_right" / "done"
    made_from = json.loads(done.read_text())
    done.write_text(json.dumps({**made_from, "text": {"extra_words": 300}}))
    with pytest.raises(ConfigError, match=r"other text settings.*new --out"):
        run_recipe(recipe, run, workers=1, progress=False)


def test_the_bundle_predicts_every_modality_through_the_pipeline(tiny_bundle):
    model = EvalModel.load(tiny_bundle)
    rgb = {model.rgb: np.stack([generate_sample(seed_for("val", i), 32)["rgb"] for i in range(2)])}
    depth = model.image("depth", rgb, steps=2)
    assert depth.shape == (2, 32, 32) and (depth > 0).all()
    normal = model.image("normal", rgb, steps=2)
    np.testing.assert_allclose(np.linalg.norm(normal, axis=-1), 1.0, atol=1e-4)
    assert model.image("semseg", rgb).dtype == np.uint8
    palette = model.texts("color_palette", rgb)
    assert len(palette) == 2 and all(isinstance(t, str) for t in palette)
    cond = {"world_caption": model.text_condition("caption", ["a room with one object."] * 2),
            "tok_depth@32": model.image_tokens("depth", depth, "tok_depth@32")}
    generated = model.image("rgb", cond, steps=2, temperature=1.0)
    assert generated.shape == (2, 32, 32, 3) and generated.dtype == np.uint8


def test_a_folder_that_is_no_bundle_says_how_to_train_one(tmp_path):
    with pytest.raises(MissingModelError, match="open4m demo --train"):
        convert_bundle(tmp_path, tmp_path / "out")
    with pytest.raises(MissingModelError, match="open4m demo --train"):
        EvalModel.load(tmp_path)


def test_a_world_model_with_a_file_lost_says_to_restore_it_not_to_retrain(tmp_path):
    """A copy that left out its weights is a world model still: eight hours of training is not the fix."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(SHIPPED, copy)
    (copy / "model.safetensors").rename(copy / "weights.safetensors")
    with pytest.raises(MissingModelError, match=r"is a world model with files missing \(model\.safetensors\); "
                                                r"restore them") as err:
        EvalModel.load(copy)
    assert "demo --train" not in str(err.value)


def _write_old_layout(bundle, out):
    """A bundle as open4m wrote them before the standard layout (metadata without pixel normalisation)."""
    out.mkdir()
    with safe_open(str(bundle / "model.safetensors"), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    specs = [{k: v for k, v in s.items() if k not in ("pixel_mean", "pixel_std")}
             for s in json.loads(metadata["open4m_modalities"])]
    save_file(tensors, str(out / "fourm.safetensors"), metadata={**metadata, "open4m_modalities": json.dumps(specs)})
    for b in IMAGE_MODALITIES:
        shutil.copy(bundle / "tokenizers" / f"tok_{b}.safetensors", out / f"tok_{b}.safetensors")
    shutil.copy(bundle / "tokenizers" / "text.json", out / "text_tokenizer.json")
    shutil.copy(bundle / "world.json", out / "world.json")


def _greedy_depth_tokens(model: EvalModel, rgb: np.ndarray) -> torch.Tensor:
    pipe = model.pipeline([model.rgb], model.image_modality("depth"))
    return pipe({model.rgb: rgb[None]}, seed=0).tokens[model.image_modality("depth")]["tensor"]


@pytest.mark.skipif(bool(bundle_missing(SHIPPED)), reason="no world model shipped in src/open4m/assets")
def test_old_layout_still_loads_and_converts_bit_exactly(tmp_path):
    old = tmp_path / "old"
    _write_old_layout(SHIPPED, old)
    assert bundle_missing(old) == []
    rgb = generate_sample(seed_for("test", 0), 64)["rgb"]
    assert torch.equal(_greedy_depth_tokens(EvalModel.load(old), rgb), _greedy_depth_tokens(EvalModel.load(), rgb))
    new = convert_bundle(old, tmp_path / "new")
    assert bundle_missing(new) == []
    with safe_open(str(old / "fourm.safetensors"), "pt") as a, safe_open(str(new / "model.safetensors"), "pt") as b:
        assert set(a.keys()) == set(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) and a.get_tensor(k).dtype == b.get_tensor(k).dtype
                   for k in a.keys())


def test_resuming_with_other_text_settings_is_refused_before_anything_changes(tiny_bundle, tmp_path):
    """A rerun into a recipe folder reuses its tokens; with another vocabulary every text id would be stale."""
    import yaml

    from open4m.errors import ConfigError
    from open4m.recipes.world import run_recipe

    run = tiny_bundle.parent
    done = run / "tokens" / "done"
    assert json.loads(done.read_text())["text"] == {"extra_words": 100}
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    recorded = yaml.safe_load(json.loads((tiny_bundle / "world.json").read_text())["recipe"])  # the run's own recipe
    recorded["text"]["extra_words"] = 300
    recipe = tmp_path / "more_words.yaml"
    recipe.write_text(yaml.safe_dump(recorded))
    with pytest.raises(ConfigError, match=r"other text settings.*new --out"):
        run_recipe(recipe, run, workers=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before


def test_a_resumed_run_keeps_the_text_vocabulary_its_tokens_were_written_with(tiny_bundle, tmp_path, monkeypatch):
    """The vocabulary is kept in the run: training it again may give other ids (on this tiny corpus it often
    does). A run made before that is resumed only if a new vocabulary encodes its token folder to the same ids."""
    from open4m.data.synthetic.world import SEQUENCE_MODALITIES, render_world
    from open4m.errors import ConfigError
    from open4m.recipes import world as recipe_module
    from open4m.recipes.world import run_text_vocab
    from open4m.tokenizers import TextTokenizer

    run = tiny_bundle.parent
    kept = run / "tokenizers" / "text.json"
    assert kept.is_file()
    assert (TextTokenizer.from_pretrained(kept).backend.to_str()
            == TextTokenizer.from_pretrained(tiny_bundle / "tokenizers" / "text.json").backend.to_str())
    data = render_world("train", 24, 32, workers=1, progress=False)
    assert run_text_vocab(data, 100, run / "tokenizers", run / "tokens").backend.to_str() \
        == TextTokenizer.from_pretrained(kept).backend.to_str()

    # a run folder of the earlier layout (tokens written, no text.json), and a retrained vocabulary that
    # happens to give the same ids: the run's own, so that the test does not depend on the trainer's tie order
    monkeypatch.setattr(recipe_module, "text_vocab", lambda texts, extra: TextTokenizer.from_pretrained(kept))
    legacy = tmp_path / "legacy"
    shutil.copytree(run / "tokens", legacy / "tokens")
    (legacy / "tokenizers").mkdir()
    run_text_vocab(data, 100, legacy / "tokenizers", legacy / "tokens")
    assert (legacy / "tokenizers" / "text.json").is_file()

    (legacy / "tokenizers" / "text.json").unlink()
    caption = legacy / "tokens" / SEQUENCE_MODALITIES["caption"] / f"{data.names[0]}.npy"
    np.save(caption, np.load(caption)[::-1].copy())  # written with some other vocabulary
    with pytest.raises(ConfigError, match=r"text vocabulary this run did not keep.*delete .*tokens"):
        run_text_vocab(data, 100, legacy / "tokenizers", legacy / "tokens")
    assert not (legacy / "tokenizers" / "text.json").exists()


def test_record_evaluation_puts_metrics_intervals_and_comparison_in_the_card(tiny_bundle, tmp_path):
    from open4m.eval.runner import evaluate, load_samples
    from open4m.recipes.world import record_evaluation

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    from safetensors.torch import load_file

    before = load_file(bundle / "model.safetensors")
    samples = load_samples("world", limit=4, split="val", image_size=32)
    result = evaluate(bundle, samples, ["depth"], progress=False, resamples=5)
    comparison = [dict(model="multitask", task="depth", metric="abs_rel", value=0.5, baseline=0.9, train_s=3.0, steps=3),
                  dict(model="rgb->depth", task="depth", metric="abs_rel", value=0.6, baseline=0.9, train_s=1.0, steps=3)]
    record_evaluation(bundle, evaluation={**result.to_json(), "scenes": 4, "split": "val", "command": "x"},
                      comparison=comparison)
    info = json.loads((bundle / "world.json").read_text())
    assert info["eval"]["scenes"] == 4 and info["comparison"] == comparison
    card = (bundle / "README.md").read_text()
    ci = result.intervals["depth"]
    assert f"[{ci['low']:.4g}, {ci['high']:.4g}] (baseline" in card
    assert "| rgb->depth | depth | abs_rel | 0.6 | 0.9 | 1 |" in card and "for 3 steps each" in card
    after = load_file(bundle / "model.safetensors")
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)  # bit for bit
    assert EvalModel.load(bundle).image_size == 32


def test_card_states_the_masking_the_model_was_trained_with():
    from open4m.recipes.world_card import _training

    recipe = {"tokenizers": {"train": {"steps": 5, "batch_size": 2, "lr": 1e-3}},
              "fourm": {"data": {"mixture": "rgb-to-all", "alpha": 0.5, "rgb_share": 0.65,
                                 "target_alphas": {"tok_semseg@64": 1.5}, "input_tokens": 8, "target_tokens": 8,
                                 "batch_size": 2},
                        "optim": {"lr": 1e-3}, "train": {"steps": 10}}}
    (line,) = _training(recipe)
    assert "a share 0.65 of the samples take their inputs from the RGB pixels alone" in line
    assert "; target alphas `tok_semseg@64` 1.5)" in line
    recipe["fourm"]["data"]["biased_shares"] = {"world_caption": 0.15}
    (line,) = _training(recipe)
    assert "1.5; a share 0.15 whose input is `world_caption` alone (4M's caption-biased part))" in line
    recipe["fourm"]["data"]["biased_shares"] = {"tok_depth@64+world_caption": 0.1}
    (line,) = _training(recipe)
    assert "a share 0.1 whose input is `tok_depth@64` and `world_caption` together)" in line
    recipe["fourm"]["data"]["biased_input_alphas"] = {"tok_rgb@64": 2.0}
    (line,) = _training(recipe)
    assert ("together; `tok_rgb@64` shown in part beside them (input alpha 2, the rest a target))") in line
    del recipe["fourm"]["data"]["biased_input_alphas"]
    del recipe["fourm"]["data"]["biased_shares"]
    del recipe["fourm"]["data"]["rgb_share"], recipe["fourm"]["data"]["target_alphas"]
    (line,) = _training(recipe)  # a bundle from before the option: the official half, nothing dangling
    assert "a share 0.5 of the samples" in line and "Dirichlet(0.5) over everything)" in line


def test_demo_keys_lists_the_recipe_a_misspelt_key_points_to(tmp_path, capsys):
    """A misspelt key of a --train recipe says '`open4m demo --keys` lists them all': demo had no --keys."""
    from open4m.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {train_scens: 48}\n")
    assert main(["demo", "--train", "--config", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "`open4m demo --keys` lists them all" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["demo", "--keys"]) == 0
    listed = capsys.readouterr().out
    assert "  train_scenes: 3000  # " in listed and "codebook_size:" in listed and "stages: []" in listed


def test_a_run_from_a_bundle_takes_its_vocabulary_and_tokenizers_and_retrains_only_those_it_names(tiny_bundle,
                                                                                                   tmp_path):
    """`tokenizers.from_bundle` + `fourm.model.init_from`: a model taught one new tokenizer reads every other id as
    the bundle's model did (the tokenizers and vocabulary are the bundle's, not retrained ones)."""
    from safetensors.torch import load_file

    from open4m.errors import ConfigError
    from open4m.recipes.world import run_recipe
    from open4m.tokenizers import TextTokenizer

    recipe = yaml.safe_load(json.loads((tiny_bundle / "world.json").read_text())["recipe"])
    recipe["tokenizers"]["from_bundle"] = str(tiny_bundle)
    recipe["tokenizers"]["per_modality"] = {"rgb": {"arch": {"dim": 40}, "train": {"steps": 2}}}
    recipe["fourm"]["model"]["init_from"] = str(tiny_bundle)
    recipe["fourm"]["train"]["steps"] = 2
    recipe["stages"] = []
    recipe["generation"] = {"caption_rgb_chain": ["det", "semseg"], "caption_rgb_guidance": {"det": 2.0}}
    path = tmp_path / "from_bundle.yaml"
    path.write_text(yaml.safe_dump(recipe))
    bundle = run_recipe(path, tmp_path / "run", workers=1, progress=False)

    old, new = tiny_bundle / "tokenizers", bundle / "tokenizers"
    for base in ("depth", "normal", "semseg", "canny_edge"):
        before, after = load_file(old / f"tok_{base}.safetensors"), load_file(new / f"tok_{base}.safetensors")
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert (TextTokenizer.from_pretrained(old / "text.json").backend.get_vocab()
            == TextTokenizer.from_pretrained(new / "text.json").backend.get_vocab())
    rgb = yaml.safe_load((tmp_path / "run" / "tokenizers" / "runs" / "rgb" / "config.yaml").read_text())
    assert rgb["model"]["enc_dim"] == 40 and not (tmp_path / "run" / "tokenizers" / "runs" / "depth").exists()
    assert yaml.safe_load((tmp_path / "run" / "fourm" / "config.yaml").read_text())["model"]["init_from"] == str(
        tiny_bundle)
    assert EvalModel.load(bundle).caption_rgb_chain == ("det", "semseg")  # the bundle records how it draws
    assert EvalModel.load(bundle).spec.caption_rgb_guidance == {"det": 2.0}
    began = json.loads((tiny_bundle / "world.json").read_text())["recipe"]  # how the model it went on from began
    assert json.loads((bundle / "world.json").read_text())["scratch_recipe"] == began
    card = (bundle / "README.md").read_text()
    assert f"Its first FourM stage starts from the weights of `{tiny_bundle.name}`" in card  # no machine's path
    line = ('open4m.pipeline("world_caption->world_det->tok_semseg@32->tok_rgb@32", model=FOLDER, '
            'cfg=[1, 1, "world_det=2"])')  # how to draw the RGB as the eval does: the links unguided, RGB guided
    assert "through det, then semseg (chained generation" in card and line in card
    import open4m  # the card's line runs as written

    pipe = open4m.pipeline("world_caption->world_det->tok_semseg@32->tok_rgb@32", model=str(bundle),
                           cfg=[1, 1, "world_det=2"])
    assert pipe.schedule.steps_for("tok_rgb@32")[0].cfg_conditions == ("world_caption", "world_det")
    out = pipe("a small red metal cube.", seed=0)
    assert out.images["tok_rgb@32"][0].size == (32, 32)

    recipe["world"]["image_size"] = 64  # the bundle's tokenizers read 32 px images: refused before anything renders
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=r"from_bundle: .* tokenizes depth at 32 px .* this recipe's world at 64 px"):
        run_recipe(path, tmp_path / "other", workers=1, progress=False)
    assert not (tmp_path / "other" / "tokens").exists()


def test_a_finer_rgb_token_grid_trains_its_tokenizer_there_and_a_model_started_from_another_grid_draws_on_it(
        tiny_bundle, tmp_path):
    """`world.token_patch_sizes: {rgb: 4}` from a bundle whose grids are all 8 px: the RGB tokenizer retrains at 4 px,
    the FourM keeps every weight of the bundle's model and gets the RGB grid's new positions, and it draws 8x8-token
    RGB that decodes at the world's size; a modality taken from the bundle cannot change its grid."""
    from safetensors.torch import load_file

    from open4m.errors import ConfigError
    from open4m.recipes.world import run_recipe

    recipe = yaml.safe_load(json.loads((tiny_bundle / "world.json").read_text())["recipe"])
    recipe["world"]["token_patch_sizes"] = {"rgb": 4}
    recipe["tokenizers"]["from_bundle"] = str(tiny_bundle)
    recipe["tokenizers"]["per_modality"] = {"rgb": {"train": {"steps": 2}}}
    recipe["fourm"]["model"]["init_from"] = str(tiny_bundle)
    recipe["fourm"]["train"]["steps"] = 2
    recipe["stages"] = []
    path = tmp_path / "finer.yaml"
    path.write_text(yaml.safe_dump(recipe))
    bundle = run_recipe(path, tmp_path / "run", workers=1, progress=False)

    model = EvalModel.load(bundle)
    rgb, depth = model.image_modality("rgb"), model.image_modality("depth")
    assert model.spec.token_patch("rgb") == 4 and model.spec.token_patch("depth") == 8
    assert model.model.modality_info[rgb].num_tokens() == 64 and model.model.modality_info[depth].num_tokens() == 16
    start, now = load_file(tiny_bundle / "model.safetensors"), load_file(bundle / "model.safetensors")
    key = f"encoder_embeddings.{rgb}.token_emb.weight"  # started from the bundle's (two steps of training since)
    assert now[key].shape == start[key].shape and torch.allclose(now[key], start[key], atol=0.05)
    caption = {model.sequence_modality("caption", output=False): model.text_condition("caption", ["a red cube."])}
    assert model.generate(caption, rgb, steps=2, seed=0).tokens[rgb]["tensor"].shape == (1, 64)
    assert model.image("rgb", caption, steps=2).shape == (1, 32, 32, 3)
    card = (bundle / "README.md").read_text()
    assert "4x4 tokens; rgb 8x8" in card and "8 px patches (rgb 4 px)" in card

    recipe["tokenizers"]["per_modality"] = {}  # the bundle's RGB tokenizer is 4x4: not a tokenizer for an 8x8 grid
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=r"tokenizes rgb at 32 px in 8 px patches.*in 4 px patches.*per_modality.rgb"):
        run_recipe(path, tmp_path / "other", workers=1, progress=False)


@pytest.mark.parametrize("patches, error", [({"rbg": 4}, "'rbg' is not an image modality"),
                                            ({"rgb": 6}, r"\{'rgb': 6\} must divide the image size 64")])
def test_a_token_patch_size_that_names_no_modality_or_does_not_divide_the_image_is_refused(tmp_path, patches, error):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"world": {"image_size": 64, "token_patch_sizes": patches}}))
    with pytest.raises(ValueError, match=error):
        load_recipe(bad)


def test_an_installed_wheel_trains_from_scratch_even_when_the_shipped_model_went_on_from_another(tmp_path, monkeypatch):
    """Without configs/, `open4m demo --train` takes the recipe the shipped bundle keeps: the one from scratch, not a
    continuation whose start (another model) a wheel does not have."""
    import open4m.recipes.world as recipes
    import open4m.sources.world as sources

    shipped = tmp_path / "world64"
    shipped.mkdir()
    scratch = yaml.safe_dump({"world": {"train_scenes": 77}})
    onward = yaml.safe_dump({"world": {"train_scenes": 99}, "fourm": {"model": {"init_from": "elsewhere"}}})
    monkeypatch.setattr(recipes, "DEFAULT_RECIPE", tmp_path / "no-configs" / "world64.yaml")
    monkeypatch.setattr(sources, "SHIPPED", shipped)
    (shipped / "world.json").write_text(json.dumps({"recipe": scratch}))
    assert load_recipe().world.train_scenes == 77
    (shipped / "world.json").write_text(json.dumps({"recipe": onward, "scratch_recipe": scratch}))
    assert load_recipe().world.train_scenes == 77
