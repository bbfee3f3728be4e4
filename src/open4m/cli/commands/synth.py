"""`open4m synth`: write scenes of the procedural aligned world as a folder dataset."""

from __future__ import annotations

import argparse

from . import add_overwrite_argument, at_least, check_output, path_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render procedural aligned scenes (rgb, depth, normals, segmentation, ...)")
    p.add_argument("--out", required=True, help="dataset root; writes OUT/<modality>/scene_<seed>.<ext>")
    p.add_argument("--n", type=at_least(1), default=100, help="number of scenes (default 100)")
    p.add_argument("--size", type=at_least(8), default=128, help="image side in pixels (default 128)")
    p.add_argument("--seed", type=at_least(0), default=0, help="index of the first scene within the split (default 0)")
    p.add_argument("--split", choices=["train", "val", "test"], default="train",
                   help="seed range to draw from; splits never share scenes (default train)")
    p.add_argument("--workers", type=at_least(1), default=1, help="render in this many processes (default 1)")
    p.add_argument("--rgb-format", choices=["png", "jpg"], default="png", help="rgb file type (default png)")
    p.add_argument("--caption-order", choices=["random", "left_to_right"], default="random",
                   help="how captions list their objects; write the one a world model was trained on (its "
                        "world.json spec.caption_order) to evaluate it here (default random)")
    add_overwrite_argument(p, "into --out")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.data.synthetic import write_dataset

    check_output(args.out, args, folder=True)
    with path_errors("--out"):
        names = write_dataset(args.out, args.n, size=args.size, split=args.split, start=args.seed,
                              rgb_ext="." + args.rgb_format, workers=args.workers,
                              caption_order=args.caption_order)
    print(f"wrote {len(names)} {args.split} scenes at {args.size}px to {args.out}")
    return 0
