"""Fine-tuning recipes: the same YAML machinery as pre-training (`open4m.train.config`), other sections.

Sections: `model` (where the encoder comes from, head, freezing, LoRA), `task` (what is
predicted and the loss), `data`, `optim` (AdamW + layer-wise LR decay), `train`, `log`. Unknown
keys fail naming the closest key; `section.key=value` overrides are parsed as YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from ..train import config as base
from ..train.config import LogSection, _f
from ..train.lora import DEFAULT_TARGETS

TASKS = ("classification", "segmentation", "depth")


@dataclass
class ModelSection:
    init_from: str | None = _f(None, "FourM checkpoint (file, Hub dir or id) whose encoder starts the run; only "
                                     "encoder weights are read. A world bundle folder's model.safetensors describes "
                                     "its modalities (an older bundle's fourm.safetensors: the world.json beside it "
                                     "registers them). null: from scratch (preset).")
    modality: str | None = _f(None, "Pixel input modality (e.g. rgb@224); null: the checkpoint's only pixel input, "
                                    "or rgb@<data.image_size> from scratch.")
    preset: str | None = _f(None, "From scratch only (init_from null): FourM preset whose encoder is built, e.g. "
                                  "base-gelu.")
    arch: dict = _f({}, "From scratch only: FourMConfig overrides of the preset (dim, encoder_depth, num_heads, "
                        "patch_size, ...).")
    freeze_encoder: bool = _f(False, "Train the head only (linear probe / frozen trunk).")
    lora_rank: int | None = _f(None, "LoRA on the encoder blocks' linear layers: only adapters and head train; "
                                     "merged into the exported model.")
    lora_alpha: float | None = _f(None, "LoRA scale numerator (update x alpha / rank); null: alpha = rank.")
    lora_targets: list = _f(list(DEFAULT_TARGETS), "Linear layer names LoRA adapts.")
    drop_path: float = _f(0.1, "Stochastic depth rate of the last encoder block (linear ramp from 0).")
    head_layers: list = _f([], "Dense tasks: encoder blocks the head reads; []: four evenly spaced, ending at "
                               "the last.")
    head_features: int = _f(64, "Dense tasks: channel width of the DPT-style head (DPT: 256).")


@dataclass
class TaskSection:
    name: str = _f("classification", "classification, segmentation or depth.")
    num_classes: int | None = _f(None, "Classes; null: from the data (class folders; the world's semseg classes).")
    label_smoothing: float = _f(0.1, "Classification: label smoothing of the cross-entropy.")
    ignore_index: int = _f(255, "Segmentation: label value that is not scored and has no loss.")
    depth_loss: str = _f("silog", "Depth: `silog` (scale-invariant log loss on log depth; the head predicts log "
                                  "depth) or `l1` (mean absolute error in metres).")
    silog_lambda: float = _f(0.85, "Depth, silog: weight of the squared mean in sqrt(mean(d^2) - lambda mean(d)^2), "
                                   "d = log pred - log gt (1: fully scale-invariant, 0: plain log-RMSE).")
    max_depth: float | None = _f(None, "Depth: ground truth beyond this many metres is not scored (NYUv2: 10).")


@dataclass
class DataSection:
    source: str = _f("world", "`world` (procedural scenes rendered in memory at image_size) or a folder: "
                              "classification root/<class>/*.png|jpg; segmentation root/rgb/<key>.png + "
                              "root/semseg/<key>.png (class ids); depth root/rgb/<key>.png + root/depth/<key>.npy "
                              "(metres) or 16-bit png (millimetres).")
    val_source: str | None = _f(None, "Validation folder (same layout); null: `world` uses its val split, a folder "
                                      "holds out num_val_samples of its samples.")
    num_samples: int = _f(512, "`world`: training scenes.")
    num_val_samples: int = _f(64, "`world`: validation scenes; a folder without val_source: samples held out.")
    image_size: int = _f(224, "Input size (square) after crop and resize.")
    crop_scale: list = _f([0.5, 1.0], "Training random-resized-crop area range (fraction of the image).")
    flip: bool = _f(True, "Training horizontal flips.")
    pixel_norm: str = _f("imagenet", "`imagenet` mean/std (the 4M pixel input) or `symmetric` ([-1, 1], the demo "
                                     "world models).")
    reduce_zero_label: bool = _f(False, "Segmentation: label 0 is `other` -> ignore_index, the rest shift down by one "
                                        "(ADE20K).")
    batch_size: int = _f(32, "Samples per step.")
    num_workers: int = _f(0, "DataLoader worker processes (decoding and augmentation).")


@dataclass
class OptimSection(base.OptimSection):
    blr: float = _f(5e-4, "Base learning rate per 256 samples: lr = blr x batch_size / 256 (unless `lr`).")
    warmup: float = _f(0, "Linear warmup steps.")
    betas: list = _f([0.9, 0.999], "AdamW betas.")
    clip_grad: float | None = _f(None, "Clip the global gradient norm to this (null: no clipping).")
    layer_decay: float = _f(0.75, "Layer-wise LR decay: block i of L gets lr x decay^(L - i), the patch embedding "
                                  "decay^(L + 1), head and final norm the full lr (1: off).")


@dataclass
class TrainSection:
    steps: int = _f(1000, "Optimizer steps (the schedule's length).")
    out_dir: str = _f("runs/finetune", "Run folder: checkpoints, logs, the exported model.")
    resume: bool = _f(True, "Continue from the newest checkpoint in out_dir when there is one.")
    seed: int = _f(0, "Seed of the head init, data order, augmentation and drop-path.")
    device: str = _f("auto", "`auto` (cuda when available), cpu, cuda, cuda:1, ...")
    precision: str = _f("fp32", "fp32 or bf16 autocast.")
    threads: int | None = _f(None, "torch CPU threads (null: torch's default).")
    save_every: int = _f(500, "Checkpoint every N steps (and at the end).")
    keep_last: int = _f(2, "Checkpoints kept; older ones are deleted.")
    eval_every: int = _f(500, "Evaluate on the whole validation set every N steps (0: only at the end).")


@dataclass
class FinetuneConfig:
    command: ClassVar[str] = "finetune"

    model: ModelSection = field(default_factory=ModelSection, metadata={"doc": "The encoder and its head."})
    task: TaskSection = field(default_factory=TaskSection, metadata={"doc": "What is predicted, and the loss."})
    data: DataSection = field(default_factory=DataSection, metadata={"doc": "Images, labels, augmentation."})
    optim: OptimSection = field(default_factory=OptimSection, metadata={"doc": "AdamW, layer decay, LR schedule."})
    train: TrainSection = field(default_factory=TrainSection, metadata={"doc": "Run length, checkpoints, device."})
    log: LogSection = field(default_factory=LogSection, metadata={"doc": "Progress, TensorBoard, W&B."})

    def __post_init__(self) -> None:
        m, t, d = self.model, self.task, self.data
        checks = [
            (t.name in TASKS, f"task.name={t.name!r}: use one of {', '.join(TASKS)}"),
            (t.depth_loss in ("silog", "l1"), f"task.depth_loss={t.depth_loss!r}: use silog or l1"),
            (m.init_from is not None or m.preset is not None,
             "set model.init_from (a FourM checkpoint) or, for a from-scratch baseline, model.preset"),
            (not (m.freeze_encoder and m.lora_rank is not None),
             "model.freeze_encoder and model.lora_rank exclude each other; pick one"),
            (d.pixel_norm in ("imagenet", "symmetric"), f"data.pixel_norm={d.pixel_norm!r}: use imagenet or symmetric"),
            (len(d.crop_scale) == 2 and 0 < d.crop_scale[0] <= d.crop_scale[1] <= 1,
             f"data.crop_scale={d.crop_scale}: two fractions 0 < min <= max <= 1"),
            (d.batch_size >= 1 and d.image_size >= 1, "data.batch_size and data.image_size must be >= 1"),
            (self.train.precision in ("fp32", "bf16"), f"train.precision={self.train.precision!r}: use fp32 or bf16"),
            (self.train.steps >= 1 and self.train.keep_last >= 1, "train.steps and train.keep_last must be >= 1"),
            (0 < self.optim.layer_decay <= 1, "optim.layer_decay must be in (0, 1]"),
            (len(self.optim.betas) == 2, "optim.betas needs two values, e.g. [0.9, 0.999]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(data: dict[str, Any]) -> FinetuneConfig:
    return base.from_dict(data, FinetuneConfig)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> FinetuneConfig:
    """Read a fine-tuning recipe (configs/finetune/*.yaml) and apply `section.key=value` overrides."""
    return base.load_config(path, overrides, FinetuneConfig)


def describe() -> str:
    """Every fine-tuning key with its default and meaning (`open4m finetune --keys`)."""
    return base.describe(FinetuneConfig)


save_config = base.save_config
