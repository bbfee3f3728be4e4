"""The one config system (open4m.config) on the recipes that use it."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from open4m.config import apply_overrides, describe, from_dict, keys, load, merged, option, save, section, to_dict
from open4m.errors import ConfigError, NotFound
from open4m.train.tasks.fourm import FourMRecipe, load_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_build_and_every_key_is_documented():
    cfg = FourMRecipe()
    assert cfg.data.input_tokens == 128 and cfg.optim.blr == 1e-4
    for line in describe(FourMRecipe).splitlines():
        assert "  # " in line and line.split("  # ", 1)[1].strip(), line


@pytest.mark.parametrize("override, hint", [("optim.bl=1", "optim.blr"), ("train.blr=1", "optim.blr"),
                                            ("data.batchsize=2", "data.batch_size")])
def test_unknown_override_names_closest_key(override, hint):
    with pytest.raises(ConfigError, match=hint):
        load_recipe(None, [override])


def test_unknown_yaml_key_names_closest_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  warmpu: 3\n")
    with pytest.raises(ConfigError, match="optim.warmup"):
        load_recipe(path)


def test_malformed_and_missing_recipes_are_one_line_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_recipe(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_recipe(tmp_path / "list.yaml")
    with pytest.raises(NotFound, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


def test_overrides_parse_yaml_values_and_types():
    cfg = load_recipe(None, ["optim.blr=3e-4", "data.modalities=[tok_rgb@224, caption]", "train.tokens=1e6",
                             "optim.clip_grad=null"])
    assert cfg.optim.blr == pytest.approx(3e-4)
    assert cfg.data.modalities == ["tok_rgb@224", "caption"]
    assert cfg.train.tokens == 1_000_000 and isinstance(cfg.train.tokens, int)
    assert cfg.optim.clip_grad is None
    with pytest.raises(ConfigError, match="data.batch_size"):
        load_recipe(None, ["data.batch_size=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_recipe(None, ["optim.blr"])
    with pytest.raises(ConfigError, match="precision"):
        load_recipe(None, ["train.precision=fp8"])


def test_nested_overrides_reach_any_depth():
    cfg = load_recipe(None, ["model.arch.dim=64", "model.arch.num_heads=2"])
    assert cfg.model.arch == {"dim": 64, "num_heads": 2}

    @dataclass
    class Inner:
        depth: int = option(1, "an inner option")

    @dataclass
    class Middle:
        inner: Inner = section(Inner, "a section in a section")

    @dataclass
    class Outer:
        middle: Middle = section(Middle, "a section")

    assert keys(Outer) == ["middle.inner.depth"]
    assert from_dict(Outer, apply_overrides({}, ["middle.inner.depth=3"], Outer)).middle.inner.depth == 3
    with pytest.raises(ConfigError, match="did you mean 'middle.inner.depth'"):
        apply_overrides({}, ["middle.inner.dpth=3"], Outer)


def test_paths_in_a_recipe_are_relative_to_it_and_overrides_to_the_current_folder(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "r.yaml").write_text("data: {source: tokens/here, val_source: world}\n"
                                  "model: {init_from: ../runs/a/model.safetensors}\ntrain: {out_dir: ../runs/b}\n")
    cfg = load_recipe(folder / "r.yaml")
    assert cfg.data.source == str(folder / "tokens/here") and cfg.data.val_source == "world"
    assert cfg.model.init_from == str(folder / "../runs/a/model.safetensors")
    assert cfg.train.out_dir == str(folder / "../runs/b")
    monkeypatch.chdir(tmp_path)
    again = load_recipe(folder / "r.yaml", ["train.out_dir=mine", "model.init_from=EPFL-VILAB/4M-7_B_CC12M"])
    assert again.train.out_dir == "mine" and again.model.init_from == "EPFL-VILAB/4M-7_B_CC12M"


def test_a_path_meant_relative_to_the_current_folder_is_not_guessed(tmp_path, monkeypatch):
    # A recipe written before paths became recipe-relative: data sits beside the current folder, not the recipe.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "tokens").mkdir(parents=True)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "r.yaml").write_text("data: {source: data/tokens}\n")
    with pytest.raises(ConfigError, match=r"data.source: .*write '\.\./data/tokens' or an absolute path") as err:
        load_recipe(tmp_path / "configs" / "r.yaml")
    assert "\n" not in str(err.value)
    (tmp_path / "configs" / "r.yaml").write_text("data: {source: ../data/tokens}\n")
    assert load_recipe(tmp_path / "configs" / "r.yaml").data.source == str(tmp_path / "configs" / "../data/tokens")


def test_keys_of_older_recipes_are_read_at_their_new_place(tmp_path, caplog):
    from open4m.train.tasks.tokenizer import load_recipe as load_tokenizer_recipe

    (tmp_path / "old.yaml").write_text("kind: vqvae\ntrain: {steps: 5, batch_size: 4, lr: 3.0e-4, warmup_steps: 2, loss: mse}\n")
    with caplog.at_level("WARNING", logger="open4m.config"):
        cfg = load_tokenizer_recipe(tmp_path / "old.yaml", ["train.grad_clip=2.0"])
    assert (cfg.train.steps, cfg.data.batch_size, cfg.optim.lr, cfg.optim.warmup) == (5, 4, 3e-4, 2)
    assert cfg.objective.loss == "mse" and cfg.optim.clip_grad == 2.0
    assert "'train.warmup_steps' is now 'optim.warmup'" in caplog.text
    assert load_recipe(None, ["model.compile=true", "data.accum_steps=2"]).train.accum_steps == 2
    (tmp_path / "both.yaml").write_text("train: {lr: 1.0e-3}\noptim: {lr: 2.0e-3}\n")
    with pytest.raises(ConfigError, match="keep only 'optim.lr'"):
        load_tokenizer_recipe(tmp_path / "both.yaml")


def test_yaml_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_recipe(None, ["train.steps=7", "model.freeze=[encoder]", "data.source=data/tokens"])
    save(cfg, tmp_path / "sub" / "c.yaml")  # paths are saved absolute: the copy means the same from its folder
    again = load(FourMRecipe, tmp_path / "sub" / "c.yaml")
    assert again.train.out_dir == str(tmp_path / "runs/fourm") and again.data.source == str(tmp_path / "data/tokens")
    assert to_dict(again)["model"] == to_dict(cfg)["model"]
    assert yaml.safe_load((tmp_path / "sub" / "c.yaml").read_text())["train"]["steps"] == 7


def test_every_shipped_recipe_loads():
    from open4m.recipes.world import load_recipe as load_world
    from open4m.train.tasks.finetune import load_recipe as load_finetune
    from open4m.train.tasks.tokenizer import load_recipe as load_tokenizer_recipe

    found = {load_recipe: sorted(CONFIGS.glob("*.yaml")), load_finetune: sorted((CONFIGS / "finetune").glob("*.yaml")),
             load_tokenizer_recipe: sorted((CONFIGS / "tokenizers").glob("*.yaml")),
             load_world: sorted((CONFIGS / "demo").glob("*.yaml"))}
    assert all(found.values()), "a configs/ folder is empty"
    for loader, paths in found.items():
        for path in paths:
            loader(path)


def test_cli_lists_keys_and_reports_bad_keys(capsys):
    from open4m.cli import main

    assert main(["train", "--keys"]) == 0
    assert "optim:" in capsys.readouterr().out
    assert main(["train", "optim.bl=1"]) == 2
    assert "did you mean 'optim.blr'" in capsys.readouterr().err


def test_merged_changes_a_nested_key_and_keeps_its_siblings():
    base = {"optim": {"lr": 2e-3, "warmup": 500}, "data": {"target_alphas": {"det": 1.5}}, "seed": 0}
    out = merged(base, {"optim": {"lr": 6e-4}, "data": {"target_alphas": {"caption": 5.0}}, "seed": 2})
    assert out == {"optim": {"lr": 6e-4, "warmup": 500}, "data": {"target_alphas": {"det": 1.5, "caption": 5.0}},
                   "seed": 2}
    assert base["optim"]["lr"] == 2e-3  # the base is not changed
