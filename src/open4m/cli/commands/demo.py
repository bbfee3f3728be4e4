"""`open4m demo`: the shipped world model on fresh scenes; `open4m demo --train`: its recipe from scratch."""

from __future__ import annotations

import argparse


from . import add_overwrite_argument, at_least, check_output, path_errors, task_names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="any-to-any predictions of the shipped world model on fresh scenes (or --train it from scratch)",
        description="Without arguments: render fresh held-out scenes, run RGB -> depth/normals/segmentation/edges/"
                    "boxes/caption/palette/metadata, caption -> RGB and depth+caption -> RGB with the shipped model, "
                    "and write open4m-demo/ (grid.png, controls.png, one PNG per task, metrics.json). With --train: run the whole "
                    "recipe (world -> tokenizers -> FourM) and write a model bundle to OUT/model.")
    p.add_argument("--train", action="store_true", help="train the world model from scratch instead of running it")
    p.add_argument("--config", default=None, help="recipe for --train (default: configs/demo/world64.yaml)")
    p.add_argument("--model", default=None, help="a bundle folder (default: the model shipped in the package)")
    p.add_argument("--out", default=None, help="output folder (default: open4m-demo, or open4m-world for --train)")
    p.add_argument("--scenes", type=at_least(1), default=6, help="test scenes to render (default 6)")
    p.add_argument("--start", type=at_least(0), default=0, help="index of the first test scene (default 0)")
    p.add_argument("--tasks", default="all", help="comma-separated tasks of `open4m eval` (default all)")
    p.add_argument("--workers", type=at_least(1), default=2, help="--train: processes rendering the world (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--keys", action="store_true",
                   help="list every key of a --train recipe with its default and meaning, then exit")
    add_overwrite_argument(p, "into --out", "a folder holding only an earlier demo's results is rewritten "
                                            "without it, and --train resumes its own unfinished folder")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.keys:  # what a misspelt recipe key's error points to, as for train, finetune and train-tokenizer
        from open4m.config import describe
        from open4m.recipes.world import WorldRecipe

        print(describe(WorldRecipe))
        return 0
    if args.train:
        from open4m.recipes.world import is_recipe_folder, run_recipe

        check_output(args.out or "open4m-world", args, folder=True, ours=is_recipe_folder)
        with path_errors("--config/--out"):
            bundle = run_recipe(args.config, args.out or "open4m-world", workers=args.workers,
                                progress=not args.no_progress)
        print(f"world model written to {bundle}; run it with `open4m demo --model {bundle}`")
        return 0
    from open4m.demo.run import is_demo_output, run_demo

    tasks = task_names(args.tasks)
    check_output(args.out or "open4m-demo", args, folder=True, ours=is_demo_output)
    with path_errors("--model/--out"):
        result, out = run_demo(args.model, args.out or "open4m-demo", scenes=args.scenes, start=args.start,
                               tasks=tasks, progress=not args.no_progress)
    print(result.table())
    controls = f", {out}/controls.png" if (out / "controls.png").is_file() else ""
    print(f"\nwrote {out}/grid.png{controls}, one PNG per task and {out}/metrics.json")
    return 0
