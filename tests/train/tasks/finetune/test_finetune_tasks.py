"""Each task fine-tunes a few steps on world data and exports a loadable encoder + head."""

import pytest
import torch

from open4m.train.tasks.finetune import finetune
from open4m.model.checkpoint import read_safetensors
from open4m.model.encoder import FourMEncoder

EXPECTED = {"classification": {"top1", "top5"}, "segmentation": {"miou", "pixel_acc"},
            "depth": {"abs_rel", "rmse", "delta1"}}


@pytest.mark.parametrize("task", ["classification", "segmentation", "depth"])
def test_task_runs_and_exports(ft_recipe, task):
    result = finetune(ft_recipe(task))
    assert result.steps == 2 and EXPECTED[task] | {"loss"} == set(result.final)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.final.values())
    model = FourMEncoder.from_pretrained(result.model_path)
    out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == {"classification": (1, 6), "segmentation": (1, 9, 64, 64), "depth": (1, 1, 64, 64)}[task]
    assert "val/loss" in result.summary and "train/loss" in result.summary


def test_frozen_trunk_and_lora(ft_recipe, tiny_fourm):
    start, _ = read_safetensors(tiny_fourm)
    frozen = finetune(ft_recipe("classification", "frozen", model={"freeze_encoder": True}))
    tuned, _ = read_safetensors(frozen.model_path)
    assert torch.equal(tuned["encoder.0.attn.qkv.weight"], start["encoder.0.attn.qkv.weight"].float())
    assert not torch.equal(tuned["head.fc.weight"], FourMEncoder.from_pretrained(
        tiny_fourm, head="classification", num_classes=6).state_dict()["head.fc.weight"])

    lora = finetune(ft_recipe("classification", "lora", model={"lora_rank": 2}))
    merged, _ = read_safetensors(lora.model_path)
    assert not any("lora" in k or "parametrizations" in k for k in merged)  # a plain encoder
    assert not torch.equal(merged["encoder.0.attn.qkv.weight"], start["encoder.0.attn.qkv.weight"].float())
    assert torch.equal(merged["encoder_norm.weight"], start["encoder_norm.weight"].float())  # only adapters + head
