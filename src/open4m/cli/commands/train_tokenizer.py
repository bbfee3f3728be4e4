"""`open4m train-tokenizer`: train a VQ-VAE, DiVAE, MLP VQ or WordPiece tokenizer from scratch.

Settings are one recipe tree (`open4m train-tokenizer --keys` lists it): an optional YAML file
(``--config``; see ``configs/tokenizers/``) with ``kind``, ``model`` (tokenizer config fields),
``data``, ``objective``, ``optim``, ``train``, ``log``; then the flags (``--data`` is ``data.path``,
``--out`` ``train.out_dir``, ``--steps`` ``train.steps`` ...); then ``--set key.sub=value`` overrides.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from open4m.errors import ConfigError, NotFound

from . import add_overwrite_argument, at_least, check_output, device_name, check_run_folder, path_errors, recipe_errors, report_run

KINDS = ("vqvae", "divae", "mlp", "text")
ALIASES = {"mlp-vq": "mlp"}  # the name the issue tracker and the 4M papers use for the bottleneck-MLP VQ
# flag -> recipe key
_FLAGS = {"data": "data.path", "out": "train.out_dir", "steps": "train.steps", "batch_size": "data.batch_size",
          "lr": "optim.lr", "image_size": "model.image_size", "device": "train.device"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-tokenizer", help="train a tokenizer (vqvae, divae, mlp or text) on a folder of data")
    p.add_argument("--kind", choices=KINDS + tuple(ALIASES), help="tokenizer kind (or `kind:` in the YAML recipe)")
    p.add_argument("--config", type=Path, help="YAML recipe (see configs/tokenizers/)")
    p.add_argument("--data", type=Path,
                   help="folder of one modality's files (images, 16-bit depth PNGs, .npy), or text files for --kind text")
    p.add_argument("--out", type=Path, help="output folder (checkpoints/, samples/, tokenizer/)")
    p.add_argument("--modality", help="registry name (e.g. depth, rgb, semseg_coco): starts from that modality's "
                   "official tokenizer architecture (see open4m.tokenizers.presets), or fills n_channels/n_labels")
    p.add_argument("--size", choices=["official", "tiny"], default="official",
                   help="network size of the --modality preset, or of the --kind's own networks where no preset "
                        "applies (tiny: a quick CPU run)")
    p.add_argument("--steps", type=at_least(1))
    p.add_argument("--batch-size", type=at_least(1))
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=at_least(1))
    p.add_argument("--device", type=device_name, help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--vocab-size", type=at_least(1), default=30000, help="--kind text: total vocabulary size")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set model.codebook_size=1024 --set objective.loss=smooth_l1")
    p.add_argument("--keys", action="store_true", help="list every recipe key with its default and meaning, then exit")
    add_overwrite_argument(p, "into --out", "a run folder resumes without it; with --no-resume its checkpoints are "
                                            "discarded")
    p.set_defaults(handler=run)


def _overrides(args: argparse.Namespace) -> list[str]:
    """The flags as recipe overrides (before the explicit --set ones, which win)."""
    out = [f"{key}={getattr(args, flag)}" for flag, key in _FLAGS.items() if getattr(args, flag) is not None]
    if args.no_resume:
        out.append("train.resume=false")
    return out + list(args.set)


def run(args: argparse.Namespace) -> int:
    from open4m.config import apply_overrides, describe, from_dict, to_dict
    from open4m.train.tasks.tokenizer import TokenizerRecipe, load_recipe, train_tokenizer

    if args.keys:
        print(describe(TokenizerRecipe))
        return 0
    kind = ALIASES.get(args.kind, args.kind)
    if kind == "text":
        return _train_text(args)
    with recipe_errors(str(args.config) if args.config else None):
        recipe = load_recipe(args.config, [f"kind={kind}"] if kind else [])
        if recipe.kind is None and args.modality is None:
            raise ConfigError(f"choose a tokenizer kind with --kind ({', '.join(KINDS)}) or `kind:` in the recipe")
        recipe = _with_modality(recipe, args)
        merged = apply_overrides(to_dict(recipe), _overrides(args), TokenizerRecipe, command="train-tokenizer")
        steps, warmup = merged["train"]["steps"], merged["optim"]["warmup"]
        if args.steps is not None and warmup >= steps and not any(o.startswith("optim.warmup=") for o in args.set):
            merged["optim"]["warmup"] = steps // 10  # a short --steps run keeps a proportionate warmup
        recipe = from_dict(TokenizerRecipe, merged, command="train-tokenizer")
    if recipe.data.path is None:
        raise ConfigError("give the training files with --data DIR (or data.path in the recipe)")
    if Path(recipe.data.path).is_file():  # "does not exist" would send the user looking for a file that is there
        raise ConfigError(f"data path {recipe.data.path} is a file; give the folder that holds the training files "
                          "(--data DIR, searched recursively)")
    if not Path(recipe.data.path).is_dir():
        raise NotFound(f"data folder {recipe.data.path} does not exist")
    check_run_folder(recipe.train, args)
    with path_errors("--data/--out"):
        result = train_tokenizer(recipe)
    report_run(result, "tokenizer")
    return 0


def _with_modality(recipe, args: argparse.Namespace):
    """``--modality``: start from its official tokenizer architecture, fill channels / labels from the registry;
    ``--size tiny`` shrinks that architecture, or the kind's own networks where no official one applies."""
    from dataclasses import replace

    from open4m import modalities
    from open4m.tokenizers.presets import OFFICIAL_TOKENIZERS, official_config, tiny_config

    model, kind = dict(recipe.model), recipe.kind
    preset_kind = None
    if args.modality in OFFICIAL_TOKENIZERS:
        preset_kind, preset = official_config(args.modality, args.size)
        kind = kind or preset_kind
        if kind == preset_kind:
            model = {**preset, **model}
    if args.size == "tiny" and kind is not None and kind != preset_kind:
        # no official architecture applies (no --modality preset, or --kind differs from it): shrink the kind's own
        # default networks (what the recipe sets wins, as over a preset), or --size tiny would train a ViT-B unsaid
        model = {**tiny_config(kind, {}), **model}
    if not args.modality:
        return replace(recipe, model=model)
    mod = modalities.get(args.modality)
    model.setdefault("modality", mod.name)
    if mod.num_channels:
        model.setdefault("n_channels", mod.num_channels)
    if mod.num_labels:
        model.setdefault("n_labels", mod.num_labels)
    return replace(recipe, kind=kind, model=model)


def _train_text(args: argparse.Namespace) -> int:
    from open4m.tokenizers.text import TextTokenizer

    if args.data is None or args.out is None:
        raise ConfigError("--kind text needs --data (a .txt file or a folder of them) and --out")
    files = [args.data] if args.data.is_file() else sorted(p for p in args.data.rglob("*.txt"))
    if not files:
        raise NotFound(f"--data {args.data}: no .txt files there; give a .txt file or a folder of .txt files")
    check_output(args.out, args, folder=args.out.suffix != ".json")
    tok = TextTokenizer.train(files, vocab_size=args.vocab_size, show_progress=True)
    with path_errors("--out"):
        path = tok.save_pretrained(args.out)
    print(f"trained a WordPiece tokenizer with {tok.vocab_size} tokens on {len(files)} files -> {path}")
    return 0
