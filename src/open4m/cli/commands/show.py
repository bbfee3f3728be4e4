"""`open4m show`: one sample of an aligned dataset as a PNG contact sheet of all its modalities."""

from __future__ import annotations

import argparse
from pathlib import Path

from open4m.errors import ConfigError

from . import path_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="write a PNG contact sheet of one sample's modalities")
    p.add_argument("--data", type=Path, required=True, help="aligned folder dataset (root/<modality>/<sample>.<ext>)")
    p.add_argument("--index", type=int, default=0, help="sample index (samples sorted by key)")
    p.add_argument("--key", help="sample key instead of an index (relative path without extension)")
    p.add_argument("--out", type=Path, help="PNG path (default: <key>.png in the current folder)")
    p.add_argument("--tile", type=int, default=192, help="size of one modality's tile in pixels")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.data.formats import FolderDataset
    from open4m.data.visualize import save_contact_sheet

    dataset = FolderDataset(args.data)
    if args.key is not None:
        if args.key not in dataset.keys:
            raise ConfigError(f"--key: no sample with key {args.key!r} in {args.data} ({len(dataset)} samples)")
        index = dataset.keys.index(args.key)
    else:
        index = args.index
    if not 0 <= index < len(dataset):
        raise ConfigError(f"--index {index} is out of range: {args.data} holds {len(dataset)} samples")
    sample = dataset[index]
    out = args.out or Path(f"{dataset.keys[index].replace('/', '_')}.png")
    with path_errors("--out"):
        save_contact_sheet(sample, out, tile=args.tile)
    print(f"wrote {out} ({', '.join(m for m in sample if not m.startswith('__'))})")
    return 0
