"""`open4m eval`: a world model's task metrics on a folder dataset, next to trivial baselines."""

from __future__ import annotations

import argparse

from open4m.errors import ConfigError, NotFound

from . import path_errors, task_names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score a world model (depth, normals, segmentation, boxes, captions, palette, ...) against baselines",
        description="Runs the model on every sample of --data (a folder as `open4m synth` writes it), or on freshly "
                    "rendered scenes of --split, and prints model vs trivial-baseline metrics; --json writes them.")
    p.add_argument("--model", default=None, help="a world-model bundle folder (default: the shipped model)")
    p.add_argument("--data", default=None, help="folder dataset with ground truth (root/<modality>/<name>.<ext>)")
    p.add_argument("--split", default="val", help="without --data: render scenes of this split (default val)")
    p.add_argument("--limit", type=int, default=64, help="samples to score (default 64)")
    p.add_argument("--tasks", default="all", help="comma-separated tasks or `all`")
    p.add_argument("--batch-size", type=int, default=16, help="samples per generation batch (default 16)")
    p.add_argument("--json", default=None, help="write the metrics here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.demo.bundle import WorldModel
    from open4m.eval.runner import evaluate, load_folder, write_json

    tasks = task_names(args.tasks)
    if args.limit < 1 or args.batch_size < 1:
        raise ConfigError("--limit and --batch-size must be >= 1")
    model = WorldModel.load(args.model)
    if args.data:
        try:
            samples = load_folder(args.data, args.limit)
        except FileNotFoundError as err:  # load_folder's own message names the folder and the fix
            raise NotFound(str(err)) from err
    else:
        from open4m.data.synthetic import generate_sample, seed_for

        samples = [generate_sample(seed_for(args.split, i), model.spec.image_size) for i in range(args.limit)]
    result = evaluate(model, samples, tasks, batch_size=args.batch_size, progress=not args.no_progress)
    print(result.table())
    if args.json:
        with path_errors("--json"):
            written = write_json(result, args.json, {'data': args.data or f'rendered {args.split} split'})
        print(f"wrote {written}")
    return 0
