"""`open4m eval`: any model's task metrics on a labelled source, next to trivial baselines."""

from __future__ import annotations

import argparse


from . import add_overwrite_argument, at_least, check_output, path_errors, task_names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score a model (depth, normals, segmentation, boxes, captions, palette, ...) against baselines",
        description="Runs the model on the first --limit samples of --data and prints model vs trivial-baseline "
                    "metrics for every task that both have the modalities of (the others are listed as skipped, "
                    "with the reason); --json writes them. --data is an aligned source: `world` (fresh scenes of "
                    "--split at the model's size), `world:SIZE`, shards, or a folder with ground truth "
                    "(DIR/rgb/NAME.jpg|png + DIR/depth/NAME.png (16-bit mm) or .npy (m), DIR/normal/, DIR/semseg/, "
                    "DIR/det/NAME.json, DIR/caption/NAME.txt), photos of any size: predictions are scored at the "
                    "ground truth's resolution. `open4m dataset motorcycle --out DIR` writes a real one.")
    p.add_argument("--model", default=None,
                   help="a world model folder (default: the shipped one), a released name, a Hub id or a model folder")
    p.add_argument("--data", default=None,
                   help="aligned source with ground truth: world, world:SIZE, a folder (root/<modality>/<name>.<ext>) "
                        "or a shard root (default: world)")
    p.add_argument("--split", default="val", choices=["train", "val", "test"],
                   help="split of rendered world scenes (default val)")
    p.add_argument("--limit", type=at_least(1), default=64, help="samples to score (default 64)")
    p.add_argument("--tasks", default="all", help="comma-separated tasks or `all`")
    p.add_argument("--batch-size", type=at_least(1), default=16, help="samples per generation batch (default 16)")
    p.add_argument("--resamples", type=at_least(0), default=100,
                   help="bootstrap resamples for each headline metric's 95%% confidence interval (0: none; default 100)")
    p.add_argument("--json", default=None, help="write the metrics here (a new file)")
    add_overwrite_argument(p, "--json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import evaluate, load_samples, write_json

    tasks = task_names(args.tasks)
    if args.json:
        check_output(args.json, args, folder=False, flag="--json")
    model = EvalModel.load(args.model)
    with path_errors("--data"):
        samples = load_samples(args.data, limit=args.limit, split=args.split, image_size=model.image_size,
                               caption_order=model.caption_order)
    result = evaluate(model, samples, tasks, batch_size=args.batch_size, progress=not args.no_progress,
                      resamples=args.resamples)
    data = args.data or f"world ({args.split} split)"
    print(result.table(f"{args.model or 'shipped world model'} on {data}: {result.num_samples} samples"))
    if args.json:
        with path_errors("--json"):
            written = write_json(result, args.json, {"data": data, "model": args.model or "shipped"})
        print(f"wrote {written}")
    return 0
