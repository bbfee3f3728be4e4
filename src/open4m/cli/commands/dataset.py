"""`open4m dataset NAME --out DIR`: write a named dataset that ships offline as an aligned folder.

`open4m synth` renders the procedural world; this verb writes data that exists already, inside an
installed package, with real ground truth, so `open4m eval --data DIR` scores a model on real photos:

- `motorcycle`: the Middlebury 2014 stereo scene in scikit-image, metric depth and normals from its
  ground-truth disparity (`open4m.recipes.real_eval`).
- `photos`: 16 photos that ship in scikit-image, scikit-learn and matplotlib with human captions, split
  into OUT/train and OUT/val (`open4m.recipes.photos`): the "own photos" of docs/own-data.md.
"""

from __future__ import annotations

import argparse

from open4m.errors import ConfigError

from . import add_overwrite_argument, check_output, path_errors

DATASETS = {"motorcycle": "real stereo photos (Middlebury 2014, from scikit-image) with metric depth and normals",
            "photos": "16 real photos with captions (scikit-image, scikit-learn, matplotlib) in OUT/train and OUT/val"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="write a dataset that ships offline (real photos with ground truth) as a folder",
                       description="Writes a named dataset as an aligned folder (OUT/rgb, OUT/depth, OUT/normal, "
                                   "OUT/caption; photos: OUT/train/{rgb,caption} and OUT/val/...) for `open4m label`, "
                                   "`open4m eval --data OUT`. Datasets: "
                                   + "; ".join(f"{k}: {v}" for k, v in DATASETS.items()) + ".")
    p.add_argument("name", choices=sorted(DATASETS), help="the dataset")
    p.add_argument("--out", required=True, help="folder to write (new or empty; --overwrite: one holding files)")
    p.add_argument("--views", default="left,right", help="motorcycle: stereo views, left and/or right (default both)")
    p.add_argument("--crops", default=None,
                   help="motorcycle: WxH crops around each view's principal point (default 600x480,480x480,320x320)")
    p.add_argument("--factors", default=None, help="motorcycle: down-sampling factors of each crop (default 1,2)")
    add_overwrite_argument(p, "into --out")
    p.set_defaults(handler=run)


def _crops(text: str) -> list[tuple[int, int]]:
    crops = []
    for item in (c.strip().lower() for c in text.split(",") if c.strip()):
        w, _, h = item.partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise ConfigError(f"--crops {text!r}: write WxH pairs separated by commas, e.g. 480x480,320x320")
        crops.append((int(w), int(h)))
    return crops


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = check_output(Path(args.out), args, folder=True)
    if args.name == "photos":
        from open4m.recipes.photos import sample_photos

        with path_errors("--out"):
            counts = sample_photos(out, overwrite=args.overwrite)
        print(f"wrote {sum(counts.values())} photos with captions to {out} ({counts['train']} in {out / 'train'}, "
              f"{counts['val']} in {out / 'val'}); label them with `open4m label --data {out / 'train'} -m ...`")
        return 0
    from open4m.recipes import real_eval

    views = [v.strip() for v in args.views.split(",") if v.strip()]
    crops = _crops(args.crops) if args.crops else real_eval.CROPS
    try:
        factors = [int(v) for v in args.factors.split(",")] if args.factors else real_eval.FACTORS
    except ValueError as err:
        raise ConfigError(f"--factors {args.factors!r}: write integers separated by commas, e.g. 1,2") from err
    with path_errors("--out"):
        names = real_eval.write_motorcycle(out, views=views, crops=crops, factors=factors)
    print(f"wrote {len(names)} {args.name} samples (rgb, depth, normal, caption) to {out}; "
          f"score a model with `open4m eval --data {out} --tasks depth,normal`")
    return 0
