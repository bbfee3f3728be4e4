"""One module per CLI verb, each with `register(subparsers)` and a handler; see `open4m.cli`.

Verb modules import nothing heavy at module level (no torch, numpy, PIL): the library is imported
inside the handler, so `open4m VERB --help` stays instant. The helpers below turn the builtin errors a
verb knows how to explain into `open4m.errors.Open4mError`s (one line, exit code 2); anything else
stays a bug with its traceback.
"""

from __future__ import annotations

import argparse
import errno
from contextlib import contextmanager
from typing import Iterator

from open4m.errors import ConfigError, NotFound, Open4mError

# OS errors about a path the user gave (not bugs): no permission, a folder where a file is meant or the
# reverse, a full or read-only disk.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def add_recipe_arguments(parser: argparse.ArgumentParser, recipe_help: str, overrides_example: str) -> None:
    """`RECIPE.yaml [section.key=value ...] [--keys]`, shared by the recipe-driven commands (train, finetune)."""
    parser.add_argument("recipe", nargs="?", help=recipe_help)
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help=f"override recipe keys, e.g. {overrides_example}")
    parser.add_argument("--keys", action="store_true",
                        help="list every recipe key with its default and meaning, then exit")


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


def open_image(path, flag: str):
    """`PIL.Image.open(path)` with an unreadable file as a one-line `DataError` (`flag` names the option)."""
    from open4m.generation.request import open_image as open_checked

    return open_checked(path, flag)


def report_skipped(skipped, what: str = "corrupt file(s)", show: int = 5) -> None:
    """The summary line of the damaged inputs a verb skipped (the first few named, with why), after its work."""
    skipped = [str(s) for s in skipped]
    if not skipped:
        return
    more = f"; and {len(skipped) - show} more (see the log above)" if len(skipped) > show else ""
    print(f"skipped {len(skipped)} {what}: {'; '.join(skipped[:show])}{more} — replace or delete them and rerun")
