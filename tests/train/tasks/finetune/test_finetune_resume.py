"""A run killed after a checkpoint resumes bit for bit (weights, optimizer, data order, drop-path RNG)."""

import torch

from open4m.train.tasks.finetune import finetune
from open4m.model.checkpoint import read_safetensors


def test_resume_is_exact(ft_recipe):
    straight = finetune(ft_recipe("segmentation", "straight", train={"steps": 4, "save_every": 2}))
    finetune(ft_recipe("segmentation", "split", train={"steps": 2, "save_every": 2}))
    resumed = finetune(ft_recipe("segmentation", "split", train={"steps": 4, "save_every": 2}))
    a, _ = read_safetensors(straight.model_path)
    b, _ = read_safetensors(resumed.model_path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in resumed.metrics if "train/loss" in r] == [1, 2, 3, 4]
