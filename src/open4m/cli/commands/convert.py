"""`open4m convert`: folder layout <-> per-modality webdataset shards, byte for byte."""

from __future__ import annotations

import argparse

from open4m.errors import ConfigError

from . import add_overwrite_argument, at_least, check_output, path_errors, report_skipped


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert an aligned dataset between the folder layout and shards")
    p.add_argument("--src", required=True, help="a folder dataset, or a shard root (holding index.json)")
    p.add_argument("--dst", required=True, help="output root")
    p.add_argument("--to", choices=["auto", "shards", "folder"], default="auto",
                   help="target form (default: the other one than --src)")
    p.add_argument("--shard-size", type=at_least(1), default=1000, help="samples per shard (default 1000)")
    p.add_argument("--modalities", nargs="+", help="only these modalities (default all)")
    add_overwrite_argument(p, "into --dst")
    p.set_defaults(handler=run)


def check_nesting(src: str, dst: str) -> None:
    """--dst must lie outside --src: a copy written into the dataset is read back as part of it (a folder of shards
    becomes a modality named like --dst; shards beside the folder layout make --src both forms at once)."""
    from pathlib import Path

    source, target = Path(src).resolve(), Path(dst).resolve()
    if target == source or source in target.parents:
        raise ConfigError(f"--dst {dst} is {'--src itself' if target == source else 'inside --src ' + src}: the converted "
                          "copy would become part of the dataset it converts; choose a --dst outside --src")


def run(args: argparse.Namespace) -> int:
    from open4m.data.formats import folder_to_shards, is_shard_root, shards_to_folder

    src_is_shards = is_shard_root(args.src)
    to = args.to if args.to != "auto" else ("folder" if src_is_shards else "shards")
    if (to == "shards") == src_is_shards:
        raise ConfigError(f"{args.src} is already in {'shard' if src_is_shards else 'folder'} form; choose --to accordingly")
    check_nesting(args.src, args.dst)
    check_output(args.dst, args, folder=True, flag="--dst")
    skipped: list[str] = []
    with path_errors("--src/--dst"):
        if to == "shards":
            index = folder_to_shards(args.src, args.dst, args.shard_size, args.modalities, skipped=skipped)
            print(f"wrote {index['num_samples']} samples as {index['num_shards']} shards per modality to {args.dst}")
        else:
            n = shards_to_folder(args.src, args.dst, args.modalities, skipped=skipped)
            print(f"wrote {n} samples in the folder layout to {args.dst}")
    report_skipped(skipped, "unreadable file(s)" if to == "folder" else "corrupt file(s)")
    return 0
