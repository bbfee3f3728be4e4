"""`open4m train RECIPE.yaml [section.key=value ...]`: pre-train or fine-tune a FourM.

Under `torchrun --nproc_per_node N -m open4m.cli train ...` every rank runs this; the recipe's
`train.distributed` picks DDP or FSDP2.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a FourM from a YAML recipe (see configs/), resuming when possible")
    p.add_argument("config", nargs="?", help="YAML recipe (configs/*.yaml); omit to start from the defaults")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="override recipe keys, e.g. train.steps=200 optim.blr=3e-4 data.batch_size=16")
    p.add_argument("--keys", action="store_true", help="list every recipe key with its default and meaning, then exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import describe, load_config

    if args.keys:
        print(describe())
        return 0
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    from ..train.fourm import train

    train(load_config(config, overrides))
    return 0
