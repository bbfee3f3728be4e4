"""`open4m finetune RECIPE.yaml [section.key=value ...]`: fine-tune the FourM encoder on a downstream task."""

from __future__ import annotations

import argparse

from open4m.errors import ConfigError

from . import add_recipe_arguments, check_run_folder, recipe_errors, report_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a FourM encoder for classification, segmentation or depth "
                                        "(recipes in configs/finetune/), resuming when possible")
    add_recipe_arguments(p, "YAML recipe, e.g. configs/finetune/world_seg.yaml",
                         "train.steps=200 optim.lr=1e-3 model.freeze_encoder=true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.train.tasks.finetune import describe, finetune, load_recipe

    if args.keys:
        print(describe())
        return 0
    if args.recipe is None or "=" in args.recipe:
        raise ConfigError("name a recipe first, e.g. `open4m finetune configs/finetune/world_seg.yaml train.steps=50` "
                          "(`open4m finetune --keys` lists every key)")
    with recipe_errors(args.recipe):
        recipe = load_recipe(args.recipe, args.overrides)
    check_run_folder(recipe.train, args)
    result = finetune(recipe)
    report_run(result, "model", " (FourMEncoder.from_pretrained)")
    return 0
