"""Fine-tuning recipes (`open4m finetune RECIPE.yaml`), in the one config system (`open4m.config`).

Sections: `model` (where the encoder comes from, head, freezing, LoRA), `task` (what is
predicted and the loss), `data`, `optim` (AdamW + layer-wise LR decay), `train`, `log`. Unknown
keys fail naming the closest key; `key.sub=value` overrides are parsed as YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

from ....config import describe as describe_config
from ....config import load, option, resolve_checkpoint_path, section
from ....errors import ConfigError
from ...engine import LogSection, OptimSection, RunSection
from ...lora import DEFAULT_TARGETS, check_lora_options

TASKS = ("classification", "segmentation", "depth")


def _data_path(value: str | None, base: Path) -> str | None:
    from ....sources import resolve_spec_path

    return None if value is None else resolve_spec_path(value, base, family="labelled")


@dataclass
class ModelSection:
    init_from: str | None = option(None, "FourM checkpoint (file, Hub dir or id) whose encoder starts the run; only "
                                     "encoder weights are read. A world bundle folder's model.safetensors describes "
                                     "its modalities (an older bundle's fourm.safetensors: the world.json beside it "
                                     "registers them). null: from scratch (preset).", path=resolve_checkpoint_path)
    modality: str | None = option(None, "Pixel input modality (e.g. rgb@224); null: the checkpoint's only pixel input, "
                                    "or rgb@<data.image_size> from scratch.")
    preset: str | None = option(None, "From scratch only (init_from null): FourM preset whose encoder is built, e.g. "
                                  "base-gelu.")
    arch: dict = option({}, "From scratch only: FourMConfig overrides of the preset (dim, encoder_depth, num_heads, "
                        "patch_size, ...).")
    freeze_encoder: bool = option(False, "Train the head only (linear probe / frozen trunk).")
    lora_rank: int | None = option(None, "LoRA on the encoder blocks' linear layers: only adapters and head train; "
                                     "merged into the exported model.")
    lora_alpha: float | None = option(None, "LoRA scale numerator (update x alpha / rank); null: alpha = rank.")
    lora_targets: list = option(list(DEFAULT_TARGETS), "Linear layer names LoRA adapts.")
    drop_path: float = option(0.1, "Stochastic depth rate of the last encoder block (linear ramp from 0).")
    head_layers: list = option([], "Dense tasks: encoder blocks the head reads; []: four evenly spaced, ending at "
                               "the last.")
    head_features: int = option(64, "Dense tasks: channel width of the DPT-style head (DPT: 256).")


@dataclass
class TaskSection:
    name: str = option("classification", "classification, segmentation or depth.")
    num_classes: int | None = option(None, "Classes; null: from the data (class folders; the world's semseg classes).")
    label_smoothing: float = option(0.1, "Classification: label smoothing of the cross-entropy.")
    ignore_index: int = option(255, "Segmentation: label value that is not scored and has no loss.")
    depth_loss: str = option("silog", "Depth: `silog` (scale-invariant log loss on log depth; the head predicts log "
                                  "depth) or `l1` (mean absolute error in metres).")
    silog_lambda: float = option(0.85, "Depth, silog: weight of the squared mean in sqrt(mean(d^2) - lambda mean(d)^2), "
                                   "d = log pred - log gt (1: fully scale-invariant, 0: plain log-RMSE).")
    max_depth: float | None = option(None, "Depth: ground truth beyond this many metres is not scored (NYUv2: 10).")


@dataclass
class DataSection:
    source: str = option("world", "`world` (procedural scenes rendered in memory at image_size) or a folder: "
                              "classification root/<class>/*.png|jpg; segmentation root/rgb/<key>.png + "
                              "root/semseg/<key>.png (class ids); depth root/rgb/<key>.png + root/depth/<key>.npy "
                              "(metres) or 16-bit png (millimetres).", path=_data_path)
    val_source: str | None = option(None, "Validation folder (same layout); null: `world` uses its val split, a folder "
                                      "holds out num_val_samples of its samples.", path=_data_path)
    num_samples: int = option(512, "`world`: training scenes.")
    num_val_samples: int = option(64, "`world`: validation scenes; a folder without val_source: samples held out.")
    image_size: int = option(224, "Input size (square) after crop and resize.")
    crop_scale: list = option([0.5, 1.0], "Training random-resized-crop area range (fraction of the image).")
    flip: bool = option(True, "Training horizontal flips.")
    pixel_norm: str = option("imagenet", "`imagenet` mean/std (the 4M pixel input) or `symmetric` ([-1, 1], the demo "
                                     "world models).")
    reduce_zero_label: bool = option(False, "Segmentation: label 0 is `other` -> ignore_index, the rest shift down by one "
                                        "(ADE20K).")
    batch_size: int = option(32, "Samples per step.")
    num_workers: int = option(0, "DataLoader worker processes (decoding and augmentation).")


@dataclass
class FinetuneOptim(OptimSection):
    blr: float = option(5e-4, "Base learning rate per 256 samples: lr = blr x batch_size / 256 (unless `lr`).")
    warmup: float = option(0, "Linear warmup steps.")
    betas: list = option([0.9, 0.999], "AdamW betas.")
    clip_grad: float | None = option(None, "Clip the global gradient norm to this (null: no clipping).")
    layer_decay: float = option(0.75, "Layer-wise LR decay: block i of L gets lr x decay^(L - i), the patch embedding "
                                  "decay^(L + 1), head and final norm the full lr (1: off).")


@dataclass
class FinetuneRun(RunSection):
    steps: int = option(1000, "Optimizer steps (the schedule's length).")
    out_dir: str = option("runs/finetune", "Run folder: checkpoints, logs, the exported model (in a recipe file: "
                                           "relative to the file).", path=True)
    eval_every: int = option(500, "Evaluate on the whole validation set every N steps (0: only at the end).")


@dataclass
class FinetuneRecipe:
    command: ClassVar[str] = "finetune"

    model: ModelSection = section(ModelSection, "The encoder and its head.")
    task: TaskSection = section(TaskSection, "What is predicted, and the loss.")
    data: DataSection = section(DataSection, "Images, labels, augmentation.")
    optim: FinetuneOptim = section(FinetuneOptim, "AdamW, layer decay, LR schedule.")
    train: FinetuneRun = section(FinetuneRun, "Run length, checkpoints, device.")
    log: LogSection = section(LogSection, "Progress, TensorBoard, W&B.")

    def __post_init__(self) -> None:
        m, t, d = self.model, self.task, self.data
        check_lora_options(m.lora_rank, m.lora_alpha)
        checks = [
            (t.name in TASKS, f"task.name={t.name!r}: use one of {', '.join(TASKS)}"),
            (t.depth_loss in ("silog", "l1"), f"task.depth_loss={t.depth_loss!r}: use silog or l1"),
            (m.init_from is not None or m.preset is not None,
             "set model.init_from (a FourM checkpoint) or, for a from-scratch baseline, model.preset"),
            (not (m.freeze_encoder and m.lora_rank is not None),
             "model.freeze_encoder and model.lora_rank exclude each other; pick one"),
            # a rate of 1 or more failed inside torch's bernoulli_ at the first training step
            (0 <= m.drop_path < 1, f"model.drop_path={m.drop_path}: a stochastic depth rate in [0, 1), e.g. 0.1"),
            (d.pixel_norm in ("imagenet", "symmetric"), f"data.pixel_norm={d.pixel_norm!r}: use imagenet or symmetric"),
            (len(d.crop_scale) == 2 and 0 < d.crop_scale[0] <= d.crop_scale[1] <= 1,
             f"data.crop_scale={d.crop_scale}: two fractions 0 < min <= max <= 1"),
            (d.batch_size >= 1 and d.image_size >= 1, "data.batch_size and data.image_size must be >= 1"),
            (self.train.precision in ("fp32", "bf16"), f"train.precision={self.train.precision!r}: use fp32 or bf16"),
            (0 < self.optim.layer_decay <= 1, "optim.layer_decay must be in (0, 1]"),
            (self.train.accum_steps == 1, "train.accum_steps: fine-tuning takes one batch per step; raise data.batch_size"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = ()) -> FinetuneRecipe:
    """Read a fine-tuning recipe (configs/finetune/*.yaml) and apply `key.sub=value` overrides."""
    return load(FinetuneRecipe, path, overrides, command="finetune")


def describe() -> str:
    """Every fine-tuning key with its default and meaning (`open4m finetune --keys`)."""
    return describe_config(FinetuneRecipe)
