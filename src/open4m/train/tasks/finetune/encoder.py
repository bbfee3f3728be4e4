"""The encoder a recipe fine-tunes: from a FourM checkpoint or from scratch, frozen, LoRA, LR groups."""

from __future__ import annotations

from pathlib import Path

from ....errors import ConfigError
from ....modalities import Kind, Modality
from ....model import preset
from ....model.encoder import EncoderConfig, FourMEncoder
from ...lora import add_lora, is_lora_parameter
from .objectives import Objective
from .recipe import ModelSection


def register_bundle_modalities(init_from: str) -> bool:
    """Register a world bundle's modalities when `init_from` is (or lies in) a bundle folder with world.json."""
    path = Path(init_from)
    folder = path.parent if path.is_file() else path
    spec_file = folder / "world.json"
    if not spec_file.is_file():
        return False
    from ....data.synthetic.world import read_world_json, register_modalities

    register_modalities(read_world_json(folder)[1])
    return True


def _scratch(section: ModelSection, image_size: int, head: dict) -> FourMEncoder:
    from .... import modalities

    if "domains_in" in section.arch or "domains_out" in section.arch:
        raise ConfigError("model.arch sets the architecture only; the modality is model.modality")
    config = preset(section.preset, **section.arch)
    name = section.modality or f"rgb@{image_size}"
    try:
        modality = modalities.get(name)
    except KeyError:
        modality = Modality(name, Kind.PIXELS, image_size=image_size, patch_size=config.patch_size, num_channels=3,
                            encoder=True)
    if modality.kind is not Kind.PIXELS:
        raise ConfigError(f"model.modality={name!r} is not a pixel modality")
    return FourMEncoder(EncoderConfig.from_fourm(config, modality, **head))


def build_encoder(section: ModelSection, task: Objective, image_size: int) -> tuple[FourMEncoder, str]:
    """The FourMEncoder with the task's head, freezing / LoRA applied; plus a one-line report."""
    head = dict(head=task.head, num_classes=task.out_channels, head_layers=section.head_layers,
                head_features=section.head_features, drop_path_rate=section.drop_path)
    if section.init_from is not None:
        register_bundle_modalities(section.init_from)
        model = FourMEncoder.from_pretrained(section.init_from, section.modality, **head).train()
        report = f"encoder of {section.init_from}"
    else:
        model = _scratch(section, image_size, head)
        report = f"from scratch ({section.preset})"
    c = model.config
    report += (f": {c.modality}, {c.depth} blocks x {c.dim}, {task.head} head "
               f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    if section.freeze_encoder:
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("head."))
        report += "; encoder frozen"
    if section.lora_rank is not None:
        adapted = add_lora([model.encoder], section.lora_rank, section.lora_alpha, section.lora_targets)
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("head.") or is_lora_parameter(name))
        report += f"; LoRA rank {section.lora_rank} on {adapted} layers"
    unused = model.unused_by_head()  # no gradient ever reaches them: keep them out of the optimizer
    for name, param in model.named_parameters():
        if any(name == u or name.startswith(u + ".") for u in unused):
            param.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, report + f"; {trainable / 1e6:.2f} M trainable"


def layer_id(name: str, depth: int) -> int:
    """0 for the patch embedding and register tokens, i + 1 for block i, depth + 1 for the final norm and head."""
    if name.startswith(("encoder_embeddings.", "register_tokens")):
        return 0
    if name.startswith("encoder."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups(model: FourMEncoder, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups per (layer, decay / no decay), each with its `lr_scale` = layer_decay^(depth + 1 - layer)."""
    depth = model.config.depth
    skip = model.no_weight_decay()
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, depth)
        decay = name not in skip and param.dim() >= 2
        group = groups.setdefault((lid, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                                 "lr_scale": layer_decay ** (depth + 1 - lid)})
        group["params"].append(param)
    if not groups:
        raise ConfigError("nothing to train: every parameter is frozen")
    return [groups[k] for k in sorted(groups)]
