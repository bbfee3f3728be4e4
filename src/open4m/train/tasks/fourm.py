"""FourM pre-training and fine-tuning (`open4m train RECIPE.yaml`): the masked multimodal objective.

The task supplies what is FourM-specific — the model (a preset or another checkpoint's
architecture, `init_from` weights, LoRA, frozen prefixes), masked batches (a sample source, the
Dirichlet masking, a seeded per-sample order), the loss (per-modality cross-entropy) and the
export (the release layout, plus the EMA weights) — and the engine runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import torch
from torch import nn

from ... import modalities
from ...config import load, option, resolve_checkpoint_path, section
from ...errors import ConfigError
from ..engine import LogSection, OptimSection, RunSection, StepOutput, Task, TrainResult, run
from ..lora import add_lora, check_lora_options, is_lora_parameter, merge_lora

__all__ = ["FourMRecipe", "FourMTask", "train", "load_recipe", "build_model", "loss_scalars"]


def _source_path(value: Any, base: Path) -> Any:
    """`data.source` / `sources` / `val_source`: registry names stay, folders and `name:DIR` resolve against the recipe."""
    from ...sources import resolve_spec_path

    return resolve_spec_path(value, base)


@dataclass
class ModelSection:
    preset: str | None = option("tiny-swiglu_nobias", "FourM preset name (`open4m info` lists them), e.g. "
                                                     "base-swiglu_nobias; null: the architecture of `init_from`.")
    arch: dict = option({}, "FourMConfig fields overriding the preset (dim, encoder_depth, ...).")
    domains_in: list | None = option(None, "Encoder modalities; default: every data modality the encoder can take.")
    domains_out: list | None = option(None, "Decoder modalities; default: every data modality the decoder can predict.")
    init_from: str | None = option(None, "Checkpoint (file, Hub dir or id, released name) whose overlapping weights "
                                         "start the run; modalities it lacks get fresh embeddings, blocks it lacks (a deeper "
                                         "arch) start as identity.", path=resolve_checkpoint_path)
    freeze: list = option([], "Parameter-name prefixes kept frozen, e.g. [encoder, encoder_norm] for a frozen trunk.")
    lora_rank: int | None = option(None, "LoRA fine-tuning: rank of the low-rank updates of the blocks' linear layers "
                                         "(their weights freeze; merged into the exported model).")
    lora_alpha: float | None = option(None, "LoRA scale numerator (update x alpha / rank); null: alpha = rank.")
    lora_targets: list = option(["qkv", "q", "kv", "proj", "fc1", "fc2", "fc3"], "Linear layer names LoRA adapts.")
    activation_checkpointing: bool = option(False, "Recompute block activations in backward: less memory, ~30% slower.")
    attention: str = option("sdpa", "Attention backend: sdpa (every device) or flex (FlexAttention block masks; CUDA "
                                    "only for training, fastest with train.compile). Not saved in checkpoints.")


@dataclass
class DataSection:
    source: str = option("synthetic", "`synthetic` (structured random tokens), `world` (procedural scenes tokenized by "
                                      "the shipped world model's tokenizers; `world:DIR` for another world model), a "
                                      "folder of pre-tokenized files (root/<modality>/<key>.npy) or a shard root with "
                                      "index.json (relative to the recipe file).", path=_source_path)
    sources: list = option([], "Several datasets mixed per sample instead of `source`: a list of {source, weight, "
                               "modalities (default: all of data.modalities; fewer for e.g. a caption-only corpus), "
                               "folders, num_samples}; the official 4M-21 mixes CC12M/COYO/C4 as 0.6/0.2/0.2.",
                            path=_source_path)
    val_source: str | None = option(None, "Validation data (same forms); `synthetic` defaults to a disjoint seed, "
                                          "`world` to the world's validation scenes.", path=_source_path)
    modalities: list = option(["tok_rgb@224", "tok_depth@224", "tok_semseg@224", "caption"],
                              "Modalities read from the data and masked (registry names).")
    folders: dict = option({}, "Folder name per modality where it differs from the registry path (e.g. tok_rgb).")
    num_samples: int = option(1024, "`synthetic` / `world` only: size of the training set.")
    num_val_samples: int = option(64, "`synthetic` / `world` only: size of the validation set.")
    mixture: str = option("symmetric", "`symmetric` (one Dirichlet over `modalities` with `alpha`), `rgb-to-all` (the "
                                       "4M-7 recipe: half the samples see only the raw-pixel modality as input, half "
                                       "are symmetric) or an official mixture: 4m-7, 4m-7-capbias, 4m-21.")
    alpha: float = option(0.5, "Dirichlet alpha of the `symmetric` and `rgb-to-all` mixtures (input and target).")
    target_alphas: dict = option({}, "Per-modality target alpha overriding `alpha` in the `symmetric` and `rgb-to-all` "
                                     "mixtures, e.g. {tok_semseg@64: 1.5}: a larger alpha gives that modality a larger "
                                     "expected share of the target budget.")
    rgb_share: float = option(0.5, "`rgb-to-all` only: share of the samples whose only input is the raw-pixel modality "
                                   "(official 4M-7: 0.5); more trains perception from pixels, less trains generation "
                                   "from the other modalities.")
    biased_shares: dict = option({}, "`rgb-to-all` only: {modality: share} of samples whose input that modality "
                                     "dominates (kept whole, the others rare) and which is no target there, as 4M's "
                                     "caption-biased part, e.g. {world_caption: 0.15}: trains generation from it; a key "
                                     "joined by '+' (tok_depth@64+world_caption) makes several lead together; the "
                                     "all-to-all part keeps 1 - rgb_share - their sum.")
    biased_input_alphas: dict = option({}, "`rgb-to-all` with `biased_shares` only: {modality: input alpha} of "
                                           "modalities the biased parts show in part (the others' alpha is 0.05), "
                                           "e.g. {tok_rgb@64: 1.0}: a random part of the RGB tokens beside the "
                                           "leading caption, the rest targets; trains the condition of MaskGIT's "
                                           "later steps (the caption and the tokens committed so far).")
    input_tokens: int = option(128, "Encoder tokens per sample (official: 128 at 224 px).")
    target_tokens: int = option(128, "Decoder target tokens per sample (official: 128).")
    input_only: list = option([], "Modalities never used as targets.")
    target_only: list = option([], "Modalities never used as inputs.")
    image_size: int = option(224, "Image size of the image-like modalities.")
    batch_size: int = option(8, "Samples per rank per micro-step; the global batch is this x ranks x train.accum_steps.")
    num_workers: int = option(0, "DataLoader worker processes per rank (masking runs in them).")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("data.batch_size must be >= 1")
        if not self.modalities:
            raise ConfigError("data.modalities is empty: list the modalities to train on")
        if self.sources and self.source != "synthetic":
            raise ConfigError("set data.source or data.sources, not both (data.sources mixes several datasets)")
        if self.mixture == "rgb-to-all":  # shares that leave no all-to-all part: refused when the recipe is read
            from ...data.masking import all_to_all_share

            try:
                all_to_all_share(self.rgb_share, self.biased_shares)
            except ConfigError as err:
                raise ConfigError(f"data: {err}") from None


@dataclass
class FourMRunSection(RunSection):
    out_dir: str = option("runs/fourm", "Run folder: checkpoints, logs, the exported model (in a recipe file: "
                                        "relative to the file).", path=True)
    loss_type: str = option("mod", "`mod`: mean of per-modality losses (official); `token`: mean over all tokens.")
    eval_batches: int = option(4, "Validation batches per evaluation (fixed masks, so evaluations compare).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_type not in ("mod", "token"):
            raise ConfigError(f"train.loss_type={self.loss_type!r}: use mod or token")


@dataclass
class FourMRecipe:
    """`open4m train RECIPE.yaml`: model, data, optim, train, log."""

    command: ClassVar[str] = "train"
    # Keys of recipes written before the one training engine: still read, with a warning.
    renamed: ClassVar[dict[str, str]] = {"model.compile": "train.compile", "data.accum_steps": "train.accum_steps"}

    model: ModelSection = section(ModelSection, "The FourM model.")
    data: DataSection = section(DataSection, "Data, masking and batching.")
    optim: OptimSection = section(OptimSection, "AdamW and the LR schedule.")
    train: FourMRunSection = section(FourMRunSection, "Run length, checkpoints, devices.")
    log: LogSection = section(LogSection, "Progress, TensorBoard, W&B.")

    def __post_init__(self) -> None:
        check_lora_options(self.model.lora_rank, self.model.lora_alpha)
        if self.train.ema_decay is not None and self.model.lora_rank is not None:
            raise ConfigError("train.ema_decay with model.lora_rank is not supported; drop one of them")


def load_recipe(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> FourMRecipe:
    """A FourM training recipe from YAML (or the defaults) plus `key.sub=value` overrides."""
    return load(FourMRecipe, path, overrides, command="train")


# ------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------
def build_model(section: ModelSection, data_modalities: list[str], image_size: int,
                input_only: list[str] = (), target_only: list[str] = ()) -> tuple[nn.Module, str]:
    """The FourM of a recipe, with `init_from` weights, LoRA and frozen prefixes applied; plus a report line."""
    from ...model import FourM, FourMConfig, load_config, preset
    from ...model.checkpoint import load_state_dict_into, resolve_checkpoint, start_grown_blocks_as_identity
    from ...weights import read_safetensors

    if "domains_in" in section.arch or "domains_out" in section.arch:
        raise ConfigError("set model.domains_in / model.domains_out, not inside model.arch")
    mods = modalities.get_many(data_modalities)
    domains_in = section.domains_in or [m for m in data_modalities if mods[m].encoder and m not in target_only]
    domains_out = section.domains_out or [m for m in data_modalities if mods[m].decoder and m not in input_only]
    arch = {"image_size": image_size, **section.arch, "domains_in": domains_in, "domains_out": domains_out}
    if section.preset is not None:
        cfg, name = preset(section.preset, **arch), section.preset
    elif section.init_from:
        cfg, name = FourMConfig.from_dict({**load_config(section.init_from).to_dict(), **arch}), "from init_from"
    else:
        raise ConfigError("model.preset is null: give a preset name or model.init_from to take the architecture from")
    model = FourM(cfg)
    report = f"FourM {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)"
    if section.init_from:
        weights, _ = resolve_checkpoint(section.init_from)
        state, _ = read_safetensors(weights)
        load_state_dict_into(model, state, strict=False)
        grown = start_grown_blocks_as_identity(model, state)
        fresh = [k for k in model.state_dict() if k not in state and not k.endswith("pos_emb")]
        new_mods = sorted({k.split(".")[1] for k in fresh if k.startswith(("encoder_embeddings.", "decoder_embeddings."))})
        report += f"; started from {section.init_from}" + (f", new embeddings for {new_mods}" if new_mods else "")
        report += "".join(f", {n} new {stack} block{'s' * (n > 1)} starting as identity" for stack, n in grown.items())
    if section.lora_rank is not None:
        adapted = add_lora([model.encoder, model.decoder], section.lora_rank, section.lora_alpha, section.lora_targets)
        report += f"; LoRA rank {section.lora_rank} on {adapted} layers"
    if section.freeze:
        report += freeze(model, section.freeze)
    model.set_activation_checkpointing(section.activation_checkpointing)
    model.set_attention_backend(section.attention)
    if section.attention != "sdpa":
        report += f"; {section.attention} attention"
    return model, report


def freeze(model: nn.Module, prefixes: list[str]) -> str:
    """Freeze every parameter under the given name prefixes (LoRA adapters excepted); returns a report."""
    names = [n for n, _ in model.named_parameters() if not is_lora_parameter(n)]
    for prefix in prefixes:
        hit = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hit:
            raise ConfigError(f"model.freeze entry {prefix!r} matches no parameter; use prefixes like encoder, decoder, "
                              "encoder_embeddings.rgb@224")
        for p in (p for n, p in model.named_parameters() if n in hit):
            p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return f"; {frozen / 1e6:.2f} M frozen"


# ------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------
def _to_device(batch: Mapping, device: torch.device) -> dict:
    return {m: {k: v.to(device, non_blocking=True) for k, v in d.items()} for m, d in batch.items()}


def loss_scalars(out: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-modality losses as (value, weight) for the monitor: a modality counts where it had targets.

    Presence comes from the model's target counts (`LossOutput.num_targets`), never from the loss
    value, and an absent modality's value is zeroed (not multiplied: it may be NaN) — all on the device.
    """
    scalars = {}
    for m, value in out.per_modality.items():
        present = out.num_targets[m] > 0
        scalars[f"loss/{m}"] = (torch.where(present, value.detach().float(), 0.0), present.float())
    return scalars


class FourMTask(Task):
    """Masked multimodal modeling on a sample source (see the module docstring)."""

    name = "fourm"

    def __init__(self, recipe: FourMRecipe) -> None:
        self.recipe = recipe

    def setup(self, info: Any) -> str:
        from ...model.flex import check_training_device
        from ...sources import build_masker, build_recipe_sources

        r, d = self.recipe, self.recipe.data
        if r.model.init_from:
            # a checkpoint describes its own modalities (a world model's rgb@64, tok_rgb@64, ...): registered before
            # the data folders are matched to names, so own data trains on them without the world source beside it;
            # names registered already keep their entries (a world recipe's finer RGB grid: the start's weights are
            # copied where they fit, its positions are the new grid's)
            from ...model import load_config

            load_config(r.model.init_from, keep_registered=True)
        # then the source: the world source registers its modalities, which the masker then looks up
        self.source, self.val_source = build_recipe_sources(d, seed=r.train.seed)
        self.masker = build_masker(d.mixture, d.modalities, alpha=d.alpha, input_tokens=d.input_tokens,
                                   target_tokens=d.target_tokens, image_size=d.image_size, input_only=d.input_only,
                                   target_only=d.target_only, allow_missing=bool(d.sources),
                                   target_alphas=d.target_alphas, rgb_share=d.rgb_share,
                                   biased_shares=d.biased_shares, biased_input_alphas=d.biased_input_alphas)
        self.model, report = build_model(r.model, d.modalities, d.image_size, d.input_only, d.target_only)
        check_training_device(r.model.attention, info.device)
        if r.model.lora_rank is not None and r.train.distributed == "fsdp" and info.enabled:
            raise ConfigError("model.lora_rank is not supported with train.distributed=fsdp; use ddp")
        return report

    def global_batch(self, info: Any, accum: int) -> int:
        return self.recipe.data.batch_size * accum * info.world

    def tokens_per_step(self, info: Any, accum: int) -> int:
        d = self.recipe.data
        return self.global_batch(info, accum) * (d.input_tokens + d.target_tokens)

    def param_groups(self, weight_decay: float) -> list[dict]:
        from ..optim import parameter_groups

        return parameter_groups(self.model, weight_decay)

    def batches(self, start: int, stop: int, info: Any, accum: int) -> Iterator[Any]:
        from ...sources import batch_loader

        d, seed = self.recipe.data, self.recipe.train.seed
        return batch_loader(self.source, self.masker, d.batch_size, seed, start=start, stop=stop, rank=info.rank,
                            world=info.world, accum=accum, num_workers=d.num_workers,
                            pin_memory=info.device.type == "cuda")

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> StepOutput:
        d = self.recipe.data
        out = model(_to_device(batch, device), d.input_tokens, d.target_tokens, loss_type=self.recipe.train.loss_type,
                    validate=False)
        return StepOutput(out.loss, loss_scalars(out))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, info: Any, precision: str) -> dict[str, float]:
        from ...sources import batch_loader
        from ..engine import _Tally, autocast

        t, d = self.recipe.train, self.recipe.data
        if self.val_source is None or t.eval_batches < 1:
            return {}
        batches = batch_loader(self.val_source, self.masker, d.batch_size, t.seed, rank=info.rank, world=info.world,
                               shuffle=False, stop=t.eval_batches)
        model.eval()
        tally = _Tally()
        for _ in range(t.eval_batches):
            with autocast(info.device, precision):
                tally.add(self.loss(model, next(batches), info.device))
        model.train()
        return tally.means(info)

    def weights_to_file(self, state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The release layout with the config in the metadata, so a checkpoint loads with `FourM.from_pretrained`."""
        from ...model.checkpoint import metadata_of, official_state_dict

        return official_state_dict(self.model, state), metadata_of(self.model.config)

    def weights_from_file(self, model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
        from ...model.checkpoint import load_state_dict_into

        load_state_dict_into(model, state, strict=True)

    def export(self, model: nn.Module, ema: Any, run_dir: Path) -> Path:
        from ...model import FourM

        merge_lora(model)  # the export is a plain FourM; the checkpoints keep the adapters
        path = model.save_file(run_dir / "model.safetensors", overwrite=True)
        bundles = self._bundles()
        inherit_tokenizers(run_dir, list(model.modality_info), bundles)
        inherit_world_spec(run_dir, list(model.modality_info), bundles)
        if ema is not None:
            averaged = FourM(model.config)
            ema.copy_to(averaged)
            averaged.save_file(run_dir / "model_ema.safetensors", overwrite=True)
        return path


    def _bundles(self) -> list[Path]:
        """Model folders whose tokenizers this run's modalities use: `init_from`, then the world sources'."""
        from ...sources.world import SHIPPED, bundle_of

        d = self.recipe.data
        folders = [Path(self.recipe.model.init_from)] if self.recipe.model.init_from else []
        for spec in [d.source, *(entry.get("source", "") for entry in d.sources if isinstance(entry, Mapping))]:
            if spec == "world" or str(spec).startswith("world:"):
                folders.append(bundle_of(spec) or SHIPPED)
        return [f for f in folders if f.is_dir()]


def inherit_tokenizers(run_dir: Path, names: list[str], bundles: list[Path]) -> dict[str, str]:
    """Copy the tokenizers of `names` listed by the `bundles`' `tokenizers.json` into `run_dir` and list them there.

    Why: a model fine-tuned from a world bundle (or trained on world data) predicts tokens only those
    tokenizers decode; with them beside `model.safetensors`, `open4m generate` / `eval` / `pipeline`
    take the run folder as they take the bundle. The first bundle listing a modality wins; released
    ids stay references. Returns the manifest written ({} when no bundle lists any of `names`).
    """
    import shutil

    from ...atomic import atomic_write
    from ...hub import Origin
    from ...tokenizers.resolver import read_manifest, write_manifest

    table: dict[str, str] = {}
    for bundle in bundles:
        for name, source in read_manifest(Origin(bundle)).items():
            if name not in names or name in table:
                continue
            file = bundle / source
            if not file.is_file():  # a released id or Hub reference: kept as it is
                table[name] = source
                continue
            target = run_dir / "tokenizers" / file.name
            if not target.exists():
                atomic_write(target, lambda tmp, src=file: shutil.copyfile(src, tmp))
            table[name] = target.relative_to(run_dir).as_posix()
    if table:
        write_manifest(run_dir, table)
    return table


def inherit_world_spec(run_dir: Path, names: list[str], bundles: list[Path]) -> Path | None:
    """Write the world spec of the first world bundle whose modalities the model has into `run_dir/world.json`.

    Why: a model trained on a world's modalities decodes them as that world does (metric depth through
    its fixed affine map, edges in [-1, 1]); with the spec beside it, `open4m eval`, `demo` and `serve`
    treat the run folder as the world model it is. Only the spec is written (not the bundle's metrics,
    which describe another model), with the bundle it came from.
    """
    import json

    from ...atomic import write_text_atomic
    from ...data.synthetic.world import read_world_json

    for bundle in bundles:
        meta_file = bundle / "world.json"
        if not meta_file.is_file():
            continue
        meta, spec = read_world_json(bundle)
        if not set(spec.token_modalities) & set(names):
            continue
        out = run_dir / "world.json"
        write_text_atomic(out, json.dumps({"spec": meta["spec"], "derived_from": str(bundle.resolve())}, indent=2)
                          + "\n", overwrite=True)
        return out
    return None


def train(recipe: FourMRecipe) -> TrainResult:
    """Run (or resume) a FourM recipe; under torchrun every rank calls this."""
    return run(FourMTask(recipe), recipe.optim, recipe.train, recipe.log, recipe)
