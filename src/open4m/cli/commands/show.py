"""`open4m show`: one sample of an aligned dataset as a PNG contact sheet of all its modalities."""

from __future__ import annotations

import argparse
from pathlib import Path

from open4m.errors import ConfigError

from . import add_overwrite_argument, at_least, check_output, path_errors, report_skipped


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="write a PNG contact sheet of one sample's modalities")
    p.add_argument("--data", type=Path, required=True, help="aligned folder dataset (root/<modality>/<sample>.<ext>)")
    p.add_argument("--index", type=int, default=0, help="sample index (samples sorted by key)")
    p.add_argument("--key", help="sample key instead of an index (relative path without extension)")
    p.add_argument("--out", type=Path, required=True,
                   help="image file to write, in the format its suffix names: .png, .jpg, ... (required: show never writes "
                        "into the current folder by surprise)")
    add_overwrite_argument(p, "--out")
    p.add_argument("--tile", type=at_least(16), default=192, help="size of one modality's tile in pixels")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.data.formats import FolderDataset
    from open4m.data.visualize import save_contact_sheet

    check_output(args.out, args, folder=False)
    dataset = FolderDataset(args.data)
    if args.key is not None:
        if args.key not in dataset.keys:
            import difflib

            close = difflib.get_close_matches(args.key, dataset.keys, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"--key: no sample with key {args.key!r} in {args.data} ({len(dataset)} samples); "
                              f"{hint}give a key as the files are named, without extension, or --index N")
        index = dataset.keys.index(args.key)
    else:
        index = args.index
    if not 0 <= index < len(dataset):
        raise ConfigError(f"--index {index} is out of range: {args.data} holds {len(dataset)} samples")
    sample = dataset[index]
    with path_errors("--out"):
        save_contact_sheet(sample, args.out, tile=args.tile)
    print(f"wrote {args.out} ({', '.join(m for m in sample if not m.startswith('__'))})")
    report_skipped([f"{path} ({why})" for path, why in dataset.corrupt_files.items()], "corrupt file(s), not shown")
    return 0
