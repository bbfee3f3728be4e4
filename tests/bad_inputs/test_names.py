"""Unknown or misspelt names: verbs, options, choices, modalities, recipe keys, presets, tasks, labelers.

Every message names what was not known and suggests the closest known name (argparse in Python 3.11
suggests nothing, so open4m's parser does it).
"""

import shutil

import pytest

from battery import ROOT, Case

AREA = "Names: verbs, options, modalities, keys"


def _recipe_with_a_misspelt_section(world, user):
    (user / "recipe.yaml").write_text("trian:\n  steps: 3\n")


def _finetune_recipe(world, user):
    shutil.copy(ROOT / "configs" / "finetune" / "world_seg.yaml", user / "seg.yaml")


def _generate_with(w, *extra):
    return ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", "depth", "--out", "out", *extra]


def misspelt_modality(world, user):
    """open4m.modalities.get("dpeth")"""
    from open4m import modalities

    modalities.get("dpeth")


def misspelt_model_preset(world, user):
    """open4m.model.config.preset("base-swiglu_nobia")"""
    from open4m.model.config import preset

    preset("base-swiglu_nobia")


def misspelt_pipeline_target(world, user):
    """open4m.pipeline("rgb->depht", model=MODEL)"""
    import open4m

    open4m.pipeline("rgb->depht", model=world.model)


def misspelt_preset_override(world, user):
    """open4m.preset("base-swiglu_nobias", dimm=256)"""
    import open4m

    open4m.preset("base-swiglu_nobias", dimm=256)


def misspelt_released_tokenizer(world, user):
    """open4m.load_tokenizer("4M_tokenizers_dpeth_8k_224-448")"""
    import open4m

    open4m.load_tokenizer("4M_tokenizers_dpeth_8k_224-448")


def taken_modality_name(world, user):
    """open4m.register(Modality("depth", Kind.RAW_IMAGE, num_channels=3))"""
    import open4m

    open4m.register(open4m.Modality("depth", open4m.Kind.RAW_IMAGE, num_channels=3))


def modality_name_with_a_space(world, user):
    """open4m.Modality("my depth", Kind.RAW_IMAGE, num_channels=1)"""
    import open4m

    open4m.Modality("my depth", open4m.Kind.RAW_IMAGE, num_channels=1)


def image_size_not_a_multiple(world, user):
    """open4m.Modality("tok_x@60", Kind.IMAGE_TOKENS, vocab_size=256, image_size=60, patch_size=16, encoder=True)"""
    import open4m

    open4m.Modality("tok_x@60", open4m.Kind.IMAGE_TOKENS, vocab_size=256, image_size=60, patch_size=16, encoder=True)


def misspelt_task(world, user):
    """open4m.eval.runner.parse_tasks("depth,normls")"""
    from open4m.eval.runner import parse_tasks

    parse_tasks("depth,normls")


CASES = [
    # -- verbs and options (the CLI's parser) -----------------------------------------------------------------
    Case("name-verb", AREA, "a misspelt verb (genrate)",
         r"unknown command 'genrate'; did you mean 'generate'\?.*open4m --help",
         argv=lambda w, u: ["genrate", "--model", w.model], process=True),
    Case("name-verb-far", AREA, "a verb that is close to none",
         r"unknown command 'frobnicate' \(`open4m --help` lists every command\)",
         argv=lambda w, u: ["frobnicate"]),
    Case("name-info-option", AREA, "a misspelt option (info --presett)",
         r"unrecognized arguments: --presett 4M-7; did you mean --preset\?",
         argv=lambda w, u: ["info", "--presett", "4M-7"]),
    Case("name-info-preset", AREA, "an unknown preset choice (info --preset 4M7)",
         r"invalid choice: '4M7'.*did you mean '4M-7'\?",
         argv=lambda w, u: ["info", "--preset", "4M7"]),
    Case("name-synth-split", AREA, "a misspelt split (synth --split tarin)",
         r"invalid choice: 'tarin'.*did you mean 'train'\?",
         argv=lambda w, u: ["synth", "--out", "out", "--split", "tarin"]),
    Case("name-dataset", AREA, "a misspelt dataset name (dataset motorcyle)",
         r"invalid choice: 'motorcyle'.*did you mean 'motorcycle'\?",
         argv=lambda w, u: ["dataset", "motorcyle", "--out", "out"]),
    Case("name-convert-option", AREA, "a misspelt option (convert --shard-sise)",
         r"unrecognized arguments: --shard-sise 10; did you mean --shard-size\?",
         argv=lambda w, u: ["convert", "--src", w.data, "--dst", "out", "--shard-sise", "10"]),
    Case("name-show-option", AREA, "a misspelt option written with = (show --indx=1)",
         r"unrecognized arguments: --indx=1; did you mean --index\?",
         argv=lambda w, u: ["show", "--data", w.data, "--out", "sheet.png", "--indx=1"]),
    Case("name-stray-argument", AREA, "a stray word after the options (info foo)",
         r"unrecognized arguments: foo; `open4m info --help` lists the options",
         argv=lambda w, u: ["info", "foo"]),
    Case("name-serve-option", AREA, "a misspelt option (serve --prot)",
         r"unrecognized arguments: --prot 8080; did you mean --port\?",
         argv=lambda w, u: ["serve", "--prot", "8080"]),
    Case("name-retrieve-option", AREA, "a misspelt option (retrieve --kk)",
         r"did you mean --k\?",
         argv=lambda w, u: ["retrieve", "--model", w.model, "--index", "gallery.index", "--input", "rgb=x.png",
                            "--kk", "3"]),
    Case("name-generate-preset", AREA, "a misspelt schedule preset (generate --preset dmeo)",
         r"invalid choice: 'dmeo'.*did you mean 'demo'\?",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", "depth",
                            "--preset", "dmeo", "--out", "out"]),
    Case("name-train-tokenizer-kind", AREA, "a misspelt tokenizer kind (train-tokenizer --kind vqvea)",
         r"invalid choice: 'vqvea'.*did you mean 'vqvae'\?",
         argv=lambda w, u: ["train-tokenizer", "--kind", "vqvea", "--data", w.data / "depth", "--out", "out"]),
    Case("name-convert-to", AREA, "a misspelt target form (convert --to shard)",
         r"invalid choice: 'shard'.*did you mean 'shards'\?",
         argv=lambda w, u: ["convert", "--src", w.data, "--dst", "out", "--to", "shard"]),
    Case("name-synth-format", AREA, "a misspelt file type (synth --rgb-format jepg)",
         r"invalid choice: 'jepg'.*did you mean 'jpg'\?",
         argv=lambda w, u: ["synth", "--out", "out", "--rgb-format", "jepg"]),
    Case("name-generate-scheduler", AREA, "a misspelt diffusion sampler (generate --decode-scheduler ddimm)",
         r"invalid choice: 'ddimm'.*did you mean 'ddim'\?",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", "depth",
                            "--decode-scheduler", "ddimm", "--out", "out"]),
    Case("name-eval-split", AREA, "a misspelt split (eval --split vall)",
         r"invalid choice: 'vall'.*did you mean 'val'\?",
         argv=lambda w, u: ["eval", "--model", w.model, "--split", "vall", "--tasks", "depth"]),
    Case("name-demo-override", AREA, "a recipe override given to demo, which takes none",
         r"unrecognized arguments: train\.stepz=3; `open4m demo --help` lists the options",
         argv=lambda w, u: ["demo", "--train", "--out", "out", "train.stepz=3"]),
    Case("name-train-override-without-value", AREA, "an override without =VALUE (train train.steps)",
         r"'train\.steps' is neither a recipe file nor an override: write train\.steps=VALUE",
         argv=lambda w, u: ["train", "train.steps"]),
    # -- modalities ------------------------------------------------------------------------------------------
    Case("name-generate-target", AREA, "a misspelt target modality (generate --target depht)",
         r"unknown modality 'depht'\. Did you mean 'depth'",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", "depht",
                            "--out", "out"]),
    Case("name-generate-input", AREA, "a misspelt input modality (generate --input rbg=...)",
         r"unknown modality 'rbg'\. Did you mean 'rgb'",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"rbg={w.photo}", "--target", "depth",
                            "--out", "out"]),
    Case("name-index-modality", AREA, "a misspelt image modality (index --modality rbg)",
         r"unknown modality 'rbg'\. Did you mean 'rgb'",
         argv=lambda w, u: ["index", "--model", w.model, "--images", w.data / "rgb", "--modality", "rbg",
                            "--out", "gallery.index"]),
    Case("name-train-tokenizer-modality", AREA, "a misspelt modality (train-tokenizer --modality depht)",
         r"unknown modality 'depht'\. Did you mean 'depth'",
         argv=lambda w, u: ["train-tokenizer", "--modality", "depht", "--data", w.data / "depth", "--out", "out",
                            "--steps", "1"]),
    Case("name-tokenize-folder", AREA, "a misspelt modality folder (tokenize --modality rbg)",
         r"no folder for modalities \['rbg'\]; did you mean rgb\?",
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "rbg", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("name-generate-tokenizers", AREA, "a misspelt modality in --tokenizers (dpeth=...)",
         r"--tokenizers dpeth=: the model has no modality 'dpeth'; did you mean depth\?",
         argv=lambda w, u: _generate_with(w, "--tokenizers", f"dpeth={w.model / 'tokenizers' / 'tok_depth.safetensors'}")),
    Case("name-generate-model", AREA, "a misspelt released model name (--model 4M-21_Bx)",
         r"no FourM at '4M-21_Bx'.*did you mean 4M-21_B",
         argv=lambda w, u: ["generate", "--model", "4M-21_Bx", "--input", f"rgb={w.photo}", "--target", "depth",
                            "--out", "out"]),
    Case("name-generate-released-tokenizer", AREA, "a misspelt released tokenizer name (--tokenizers depth=...)",
         r"no tokenizer at '4M_tokenizers_dpeth_8k_224-448'.*did you mean 4M_tokenizers_depth_8k_224-448",
         argv=lambda w, u: _generate_with(w, "--tokenizers", "depth=4M_tokenizers_dpeth_8k_224-448")),
    Case("name-show-key", AREA, "a sample key that is not in the dataset (show --key)",
         r"--key: no sample with key 'scene_1' in .* \(3 samples\); did you mean 'scene_00000001'\? give a key",
         argv=lambda w, u: ["show", "--data", w.data, "--key", "scene_1", "--out", "sheet.png"]),
    Case("name-eval-source", AREA, "a misspelt data source (eval --data wrold)",
         r"wrold does not exist \(did you mean world\?\); point the data source at an existing folder",
         argv=lambda w, u: ["eval", "--model", w.model, "--data", "wrold", "--tasks", "depth"]),
    Case("name-train-source", AREA, "a misspelt data source in a recipe (train data.source=wrold)",
         r"wrold does not exist \(did you mean world\?\)",
         argv=lambda w, u: ["train", "data.source=wrold"]),
    Case("name-label", AREA, "a misspelt labeler (label -m canny_edg)",
         r"unknown label modality 'canny_edg'; did you mean canny_edge",
         argv=lambda w, u: ["label", "--data", w.data, "-m", "canny_edg"]),
    Case("name-library-modality", AREA, "a misspelt modality in the registry",
         r"unknown modality 'dpeth'\. Did you mean 'depth'.*register",
         call=misspelt_modality),
    Case("name-library-pipeline", AREA, "a misspelt target in a pipeline spec",
         r"unknown modality 'depht'\. Did you mean 'depth'",
         call=misspelt_pipeline_target),
    # -- recipe keys, presets, tasks ------------------------------------------------------------------------
    Case("name-train-key", AREA, "a misspelt recipe key (train trian.steps=3)",
         r"unknown config key 'trian\.steps'; did you mean 'train\.steps'\?.*--keys",
         argv=lambda w, u: ["train", "trian.steps=3"]),
    Case("name-train-section", AREA, "a misspelt section in a recipe file (trian:)",
         r"unknown config key 'trian'; did you mean 'train'\?.*--keys",
         setup=_recipe_with_a_misspelt_section,
         argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("name-finetune-key", AREA, "a misspelt recipe key (finetune train.stepz=1)",
         r"unknown config key 'train\.stepz'; did you mean 'train\.steps'\?.*open4m finetune --keys",
         setup=_finetune_recipe,
         argv=lambda w, u: ["finetune", "seg.yaml", "train.stepz=1"]),
    Case("name-train-tokenizer-key", AREA, "a misspelt tokenizer config key (--set model.codebok_size=3)",
         r"unknown vqvae tokenizer key 'model\.codebok_size'; did you mean 'model\.codebook_size'\?",
         argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", w.data / "depth", "--out", "out",
                            "--set", "model.codebok_size=3"]),
    Case("name-model-preset", AREA, "a misspelt FourM preset",
         r"unknown FourM preset 'base-swiglu_nobia'\. Did you mean .*swiglu_nobias",
         call=misspelt_model_preset),
    Case("name-preset-override", AREA, "a misspelt config field overriding a preset",
         r"unknown FourM config key\(s\): 'dimm' \(did you mean 'dim'\?\)",
         call=misspelt_preset_override),
    Case("name-library-released-tokenizer", AREA, "a misspelt released tokenizer name in load_tokenizer",
         r"no tokenizer at '4M_tokenizers_dpeth_8k_224-448'.*did you mean 4M_tokenizers_depth_8k_224-448",
         call=misspelt_released_tokenizer),
    Case("name-register-taken", AREA, "a new modality under a built-in name",
         r"modality 'depth' is already registered with different fields; pass overwrite=True to replace it or pick "
         r"another name",
         call=taken_modality_name),
    Case("name-register-space", AREA, "a modality name with a space",
         r"modality name 'my depth' must be non-empty without spaces",
         call=modality_name_with_a_space),
    Case("name-register-grid", "Values: types and ranges", "a modality whose image size is not a multiple of its patch size",
         r"image size 60 is not a multiple of its patch size 16; choose sizes whose ratio is whole",
         call=image_size_not_a_multiple),
    Case("name-eval-task", AREA, "a misspelt task (eval --tasks normls)",
         r"unknown tasks \['normls'\]; did you mean normal\? choose from",
         argv=lambda w, u: ["eval", "--model", w.model, "--data", w.data, "--tasks", "depth,normls"]),
    Case("name-demo-task", AREA, "a misspelt task (demo --tasks dpth)",
         r"unknown tasks \['dpth'\]; did you mean depth\? choose from",
         argv=lambda w, u: ["demo", "--tasks", "dpth", "--out", "out"]),
    Case("name-library-task", AREA, "a misspelt task in the eval runner",
         r"unknown tasks \['normls'\]; did you mean normal\?",
         call=misspelt_task),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)


def test_a_name_close_to_nothing_gets_no_guess():
    from open4m.cli import _did_you_mean

    assert _did_you_mean("zzz", ["info", "synth"]) == ""
    assert _did_you_mean("synht", ["info", "synth"]) == "; did you mean 'synth'?"


def test_a_correct_abbreviation_still_works(capsys):
    """argparse's unique prefixes (`--pres` for `--preset`) keep working: only unknown words are refused."""
    from open4m.cli import main

    assert main(["info", "--pres", "4M-7"]) == 0
    assert "tok_rgb@224" in capsys.readouterr().out
