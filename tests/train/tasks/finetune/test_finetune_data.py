"""Folder data: ImageFolder classification, rgb + depth pairs; a missing folder is a clear error."""

import numpy as np
import pytest

from open4m.data.codecs import encode
from open4m.train.tasks.finetune import finetune


def _write(path, value, modality):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(value, path.suffix, modality))


def test_missing_data_folder_is_named(ft_recipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        finetune(ft_recipe("segmentation", data={"source": str(tmp_path / "no_such_dataset")}))


def test_image_folder_classification_and_depth_pairs(ft_recipe, tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        for i in range(3):
            _write(tmp_path / "cls" / cls / f"{i}.png", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8), "rgb")
    result = finetune(ft_recipe("classification", "cls_run", data={"source": str(tmp_path / "cls"), "num_val_samples": 2},
                                train={"steps": 1}, optim={"warmup": 0}))
    assert set(result.final) == {"loss", "top1", "top5"}

    for i in range(5):
        _write(tmp_path / "nyu" / "rgb" / f"s{i}.png", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "rgb")
        _write(tmp_path / "nyu" / "depth" / f"s{i}.npy", rng.uniform(0.5, 8, (48, 64)).astype(np.float32), "depth")
    result = finetune(ft_recipe("depth", "depth_run", data={"source": str(tmp_path / "nyu"), "num_val_samples": 2},
                                task={"max_depth": 10.0}, train={"steps": 1}, optim={"warmup": 0}))
    assert result.final["rmse"] > 0
