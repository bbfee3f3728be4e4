"""One module per CLI verb, each with `register(subparsers)` and a handler; see `open4m.cli`.

Verb modules import nothing heavy at module level (no torch, numpy, PIL): the library is imported
inside the handler, so `open4m VERB --help` stays instant. The helpers below turn the builtin errors a
verb knows how to explain into `open4m.errors.Open4mError`s (one line, exit code 2); anything else
stays a bug with its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import re
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from open4m.errors import ConfigError, NotFound, Open4mError

# OS errors about a path the user gave (not bugs): no permission, a folder where a file is meant or the
# reverse, a full or read-only disk.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number >= ``minimum`` (a count, a size, a number of steps), so that
    `--n 0` or `--batch-size -1` is refused while parsing, with the option named, before any work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small; give a whole number >= {minimum}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


_DEVICE = re.compile(r"(cpu|mps|meta|(cuda|xpu)(:\d+)?)")


def device_name(text: str) -> str:
    """An argparse ``type``: a torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``, or ``auto``), checked by
    its form without importing torch, so `--device cudaa` fails while parsing instead of deep in torch."""
    if text == "auto" or _DEVICE.fullmatch(text):
        return text
    close = difflib.get_close_matches(text, ["cpu", "cuda", "mps", "auto"], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise argparse.ArgumentTypeError(f"{text!r} is not a device{hint} (give cpu, cuda, cuda:N, mps or auto)")


def add_recipe_arguments(parser: argparse.ArgumentParser, recipe_help: str, overrides_example: str) -> None:
    """`RECIPE.yaml [section.key=value ...] [--keys]`, shared by the recipe-driven commands (train, finetune)."""
    parser.add_argument("recipe", nargs="?", help=recipe_help)
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help=f"override recipe keys, e.g. {overrides_example}")
    parser.add_argument("--keys", action="store_true",
                        help="list every recipe key with its default and meaning, then exit")
    add_overwrite_argument(parser, "into train.out_dir", "a run folder resumes without it; with train.resume=false "
                                                          "its checkpoints are discarded")


@contextmanager
def path_errors(flags: str) -> Iterator[None]:
    """OS errors on the files named by `flags` (e.g. "--data/--out") -> one-line `ConfigError`s.

    Permission denied, is/not a directory, disk full or read-only: the user fixes the path, not the code.
    """
    try:
        yield
    except OSError as err:
        if isinstance(err, Open4mError) or err.errno not in _PATH_ERRNOS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        raise ConfigError(f"{where}{err.strerror or err}; check the paths given to {flags}") from err


@contextmanager
def recipe_errors(recipe: str | None) -> Iterator[None]:
    """Errors while a recipe and its overrides are READ are the user's (a key, a value, a missing file).

    Only the reading is wrapped, never the run: a `ValueError` during training stays a bug.
    """
    try:
        yield
    except Open4mError:
        raise
    except FileNotFoundError as err:
        raise NotFound(str(err)) from err
    except (KeyError, ValueError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        where = f"{recipe}: " if recipe and str(recipe) not in str(message) else ""
        raise ConfigError(f"{where}{message}") from err


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str = "the output", note: str = "") -> None:
    """`--overwrite`: the one switch that lets a verb write where files are already (see open4m.atomic.check_output).

    `note` says what the verb does without it (e.g. a run folder resumes)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"write {what} even where files are already (only the files this command writes are "
                             f"replaced; nothing else is deleted). Default: refuse{'; ' + note if note else ''}")


def check_output(path, args: argparse.Namespace, *, folder: bool, flag: str = "--out", ours=None):
    """The --overwrite rule for one output path, before any work (`open4m.atomic.check_output`)."""
    from open4m.atomic import check_output as check

    return check(path, folder=folder, overwrite=bool(getattr(args, "overwrite", False)), flag=flag, ours=ours)


def is_run_folder(path) -> bool:
    """A folder a training run wrote (it resumes there: resuming is not overwriting)."""
    from pathlib import Path

    path = Path(path)
    return any((path / name).exists() for name in ("config.yaml", "checkpoints", "metrics.jsonl",
                                                   "checkpoint.safetensors"))


def check_run_folder(train_section, args: argparse.Namespace) -> None:
    """`train.out_dir` of a recipe: a new or empty folder, or a run folder to resume. A folder holding other
    files, or a run's checkpoints with `train.resume=false`, needs --overwrite (which then discards only
    that run's checkpoints, never another file)."""
    from pathlib import Path

    from open4m.errors import OutputExists

    out = Path(train_section.out_dir)
    check_output(out, args, folder=True, flag="train.out_dir", ours=is_run_folder)
    if train_section.resume or not (out / "checkpoints").is_dir() or not any((out / "checkpoints").iterdir()):
        return
    if not args.overwrite:
        raise OutputExists(f"train.out_dir {out} holds the checkpoints of an earlier run and train.resume=false; "
                           "pass --overwrite to start over there (its checkpoints are discarded), or choose another "
                           "train.out_dir")
    import os

    from open4m.train.checkpointing import discard_checkpoints

    if os.environ.get("RANK", "0") == "0":  # under torchrun one rank deletes
        discard_checkpoints(out)


def report_run(result, what: str, how_to_load: str = "") -> None:
    """Print a finished training run's table and output, once: under torchrun only rank 0 holds them."""
    if result.model_path is None:
        return
    print(result.summary)
    print(f"{what}: {result.model_path}{how_to_load}")


def task_names(text: str) -> list[str]:
    """`--tasks` of `open4m eval` / `open4m demo` -> validated task names; an unknown one is a `ConfigError`."""
    from open4m.eval.runner import parse_tasks

    try:
        return parse_tasks(text)
    except ValueError as err:
        raise ConfigError(f"--tasks {text!r}: {err}") from err


def report_skipped(skipped: Iterable[object], what: str = "corrupt file(s)", show: int = 5) -> None:
    """The summary line of the damaged inputs a verb skipped (the first few named, with why), after its work."""
    skipped = [str(s) for s in skipped]
    if not skipped:
        return
    more = f"; and {len(skipped) - show} more (see the log above)" if len(skipped) > show else ""
    print(f"skipped {len(skipped)} {what}: {'; '.join(skipped[:show])}{more} — replace or delete them and rerun")
