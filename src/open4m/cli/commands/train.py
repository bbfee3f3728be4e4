"""`open4m train RECIPE.yaml [section.key=value ...]`: pre-train or fine-tune a FourM.

Under `torchrun --nproc_per_node N -m open4m.cli train ...` (or `-m open4m`) every rank runs this; the recipe's
`train.distributed` picks DDP or FSDP2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from open4m.errors import ConfigError

from . import add_recipe_arguments, check_run_folder, recipe_errors, report_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a FourM from a YAML recipe (see configs/), resuming when possible")
    add_recipe_arguments(p, "YAML recipe (configs/*.yaml); omit to start from the defaults",
                         "train.steps=200 optim.blr=3e-4 data.batch_size=16")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.config import describe
    from open4m.train.tasks.fourm import FourMRecipe, load_recipe, train

    if args.keys:
        print(describe(FourMRecipe))
        return 0
    config, overrides = args.recipe, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    elif config is not None and "." in config and not config.endswith((".yaml", ".yml")) and not Path(config).exists():
        raise ConfigError(f"{config!r} is neither a recipe file nor an override: write {config}=VALUE, or name a "
                          "YAML recipe (configs/*.yaml)")
    with recipe_errors(config):
        recipe = load_recipe(config, overrides)
    check_run_folder(recipe.train, args)
    result = train(recipe)
    report_run(result, "model")
    return 0
