"""Fine-tuning recipes: the train/config machinery with their own sections; shipped recipes load."""

from pathlib import Path

import pytest

from open4m.train.tasks.finetune import describe, load_recipe

RECIPES = Path(__file__).resolve().parents[4] / "configs" / "finetune"


def test_unknown_keys_name_the_closest(tmp_path):
    with pytest.raises(ValueError, match="optim.layer_decay.*open4m finetune --keys"):
        load_recipe(None, ["optim.layer_decy=0.6"])
    bad = tmp_path / "r.yaml"
    bad.write_text("model: {init_from: x}\ntrain: {label_smoothing: 0.1}\n")
    with pytest.raises(ValueError, match="task.label_smoothing"):
        load_recipe(bad)


def test_invalid_values_are_explained():
    with pytest.raises(ValueError, match="model.init_from"):
        load_recipe(None, [])
    with pytest.raises(ValueError, match="task.name"):
        load_recipe(None, ["model.init_from=x", "task.name=detection"])
    with pytest.raises(ValueError, match="exclude each other"):
        load_recipe(None, ["model.init_from=x", "model.freeze_encoder=true", "model.lora_rank=4"])
    # each of these ran: LoRA alpha without a rank trained no adapters, alpha 0 scaled them to nothing, a drop path
    # rate of 1.5 failed in torch's bernoulli_ at the first step, a negative seed in numpy at the first batch
    for overrides, message in [(["model.lora_alpha=4"], "model.lora_alpha=4.0 is set but model.lora_rank is not"),
                               (["model.lora_rank=4", "model.lora_alpha=0"], "model.lora_alpha must be > 0"),
                               (["model.drop_path=1.5"], r"model.drop_path=1.5: a stochastic depth rate in \[0, 1\)"),
                               (["model.drop_path=-0.1"], "model.drop_path=-0.1"),
                               (["train.seed=-1"], "train.seed=-1: give a whole number from 0")]:
        with pytest.raises(ValueError, match=message):
            load_recipe(None, ["model.init_from=x", *overrides])
    assert "layer_decay" in describe() and "depth_loss" in describe()


@pytest.mark.parametrize("name", ["world_cls", "world_seg", "world_depth",
                                  "imagenet_base", "ade20k_base", "nyuv2_base"])
def test_shipped_recipes_load(name):
    cfg = load_recipe(RECIPES / f"{name}.yaml")
    assert cfg.model.init_from and cfg.train.steps >= 1


def test_cli_lists_keys_and_names_a_missing_dataset(capsys):
    from open4m.cli import main

    assert main(["finetune", "--keys"]) == 0 and "layer_decay" in capsys.readouterr().out
    assert main(["finetune", str(RECIPES / "nyuv2_base.yaml")]) == 2  # placeholder data path: no download, no traceback
    assert "/path/to/nyuv2/train does not exist" in capsys.readouterr().err
