"""`open4m train-tokenizer`: train a VQ-VAE, DiVAE, MLP VQ or WordPiece tokenizer from scratch.

Settings come from an optional YAML recipe (``model:`` = tokenizer config fields, ``train:`` =
training settings; see ``configs/tokenizers/``) and are overridden by flags, then by
``--set section.key=value`` pairs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from open4m.errors import ConfigError, NotFound, Open4mError

from . import path_errors

KINDS = ("vqvae", "divae", "mlp", "text")
ALIASES = {"mlp-vq": "mlp"}  # the name the issue tracker and the 4M papers use for the bottleneck-MLP VQ


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-tokenizer", help="train a tokenizer (vqvae, divae, mlp or text) on a folder of data")
    p.add_argument("--kind", choices=KINDS + tuple(ALIASES), help="tokenizer kind (or `kind:` in the YAML recipe)")
    p.add_argument("--config", type=Path, help="YAML recipe with `model:` and `train:` sections")
    p.add_argument("--data", type=Path, required=True,
                   help="folder of one modality's files (images, 16-bit depth PNGs, .npy), or text files for --kind text")
    p.add_argument("--out", type=Path, required=True, help="output folder (checkpoint, samples/, tokenizer/)")
    p.add_argument("--modality", help="registry name (e.g. depth, rgb, semseg_coco): starts from that modality's "
                   "official tokenizer architecture (see open4m.tokenizers.presets), or fills n_channels/n_labels")
    p.add_argument("--size", choices=["official", "tiny"], default="official",
                   help="network size of the --modality preset (tiny: a quick CPU run)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", help="cpu, cuda, ... (default cpu)")
    p.add_argument("--vocab-size", type=int, default=30000, help="--kind text: total vocabulary size")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set model.codebook_size=1024 --set train.loss=smooth_l1")
    p.set_defaults(handler=run)


def _load_recipe(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    recipe: dict[str, Any] = {"model": {}, "train": {}}
    if args.config:
        if not args.config.exists():
            raise NotFound(f"recipe {args.config} does not exist (examples in configs/tokenizers/)")
        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{args.config} is not valid YAML: {str(err).splitlines()[0]}") from err
        if not isinstance(loaded, dict) or set(loaded) - {"kind", "model", "train"}:
            raise ConfigError(f"{args.config}: a recipe holds only `kind`, `model` and `train` sections")
        recipe.update({k: dict(v) if isinstance(v, dict) else v for k, v in loaded.items()})
    for item in args.set:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in ("model", "train"):
            raise ConfigError(f"--set {item!r}: use model.KEY=VALUE or train.KEY=VALUE")
        try:
            recipe[section][name] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from err
    return recipe


def run(args: argparse.Namespace) -> int:
    recipe = _load_recipe(args)
    kind = args.kind or recipe.get("kind")
    kind = ALIASES.get(kind, kind)
    if args.modality and kind != "text":
        from open4m.tokenizers.presets import OFFICIAL_TOKENIZERS, official_config

        if args.modality in OFFICIAL_TOKENIZERS:
            preset_kind, preset = official_config(args.modality, args.size)
            kind = kind or preset_kind
            if kind == preset_kind:
                recipe["model"] = {**preset, **recipe["model"]}
    if kind not in KINDS:
        raise ConfigError(f"choose a tokenizer kind with --kind ({', '.join(KINDS)}) or `kind:` in the recipe")
    if kind == "text":
        return _train_text(args)

    from open4m.sources import ImageFiles
    from open4m.tokenizers.training import TrainConfig, build_tokenizer, train_tokenizer

    model_cfg, train_cfg = recipe["model"], recipe["train"]
    if args.modality:
        from open4m import modalities

        mod = modalities.get(args.modality)
        model_cfg.setdefault("modality", mod.name)
        if mod.num_channels:
            model_cfg.setdefault("n_channels", mod.num_channels)
        if mod.num_labels:
            model_cfg.setdefault("n_labels", mod.num_labels)
    if args.image_size:
        model_cfg["image_size"] = args.image_size
    for flag, key in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "lr"), ("device", "device")):
        if getattr(args, flag) is not None:
            train_cfg[key] = getattr(args, flag)
    try:
        model = build_tokenizer(kind, model_cfg)
        cfg = TrainConfig(**train_cfg)
    except Open4mError:
        raise
    except (TypeError, ValueError) as err:  # an unknown key or a bad value in the recipe
        raise ConfigError(f"bad setting in the recipe: {err}") from None
    dataset = ImageFiles(args.data, model)
    print(f"training a {kind} tokenizer on {len(dataset)} files from {args.data} -> {args.out}")
    with path_errors("--data/--out"):
        history = train_tokenizer(model, dataset, cfg, args.out, resume=not args.no_resume)
    if history["loss"]:
        print(f"done: loss {history['loss'][0]:.4f} -> {history['loss'][-1]:.4f}; tokenizer in {args.out / 'tokenizer'}")
    return 0


def _train_text(args: argparse.Namespace) -> int:
    from open4m.tokenizers.text import TextTokenizer

    files = [args.data] if args.data.is_file() else sorted(p for p in args.data.rglob("*.txt"))
    if not files:
        raise NotFound(f"--data {args.data}: no .txt files there")
    tok = TextTokenizer.train(files, vocab_size=args.vocab_size, show_progress=True)
    with path_errors("--out"):
        path = tok.save_pretrained(args.out)
    print(f"trained a WordPiece tokenizer with {tok.vocab_size} tokens on {len(files)} files -> {path}")
    return 0
