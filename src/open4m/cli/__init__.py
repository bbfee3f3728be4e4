"""The `open4m` command line (also `python -m open4m` and `python -m open4m.cli`). Thin verbs over the library.

Every verb module listed in `COMMAND_MODULES` exposes `register(subparsers)`; its handler imports
the library (torch, numpy, ...) only when it runs, so `open4m --help` and `open4m VERB --help`
import no torch.

Errors: a user error is an `open4m.errors.Open4mError`; `main` prints it as one line,
``open4m VERB: error: <message>``, on stderr and returns its `exit_code` (2). A verb may turn the
specific errors it knows how to explain (an unreadable input image, an unwritable output path) into
an `Open4mError`. Every other exception is a bug and propagates with its traceback.

Exit codes: 0 success; 1 no verb given (the help is printed on stdout); 2 a user error (bad
arguments included, as argparse does); 130 interrupted (Ctrl-C); 141 stdout closed early (`| head`).

Logging: `main` sends the library's `logging` records (the ``open4m`` logger tree) to stderr as plain
messages: INFO and above by default, WARNING and above with ``-q/--quiet``, DEBUG with ``-v/--verbose``.
The library itself never configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from open4m.errors import Open4mError

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

COMMAND_MODULES = (
    "open4m.cli.commands.info",
    "open4m.cli.commands.synth",
    "open4m.cli.commands.dataset",
    "open4m.cli.commands.label",
    "open4m.cli.commands.convert",
    "open4m.cli.commands.show",
    "open4m.cli.commands.train_tokenizer",
    "open4m.cli.commands.train",
    "open4m.cli.commands.finetune",
    "open4m.cli.commands.tokenize",
    "open4m.cli.commands.demo",
    "open4m.cli.commands.eval",
    "open4m.cli.commands.generate",
    "open4m.cli.commands.serve",
    "open4m.cli.commands.index",
    "open4m.cli.commands.retrieve",
)


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_const", dest="log_level", const=logging.WARNING,
                       default=default, help="only warnings and errors")
    group.add_argument("-v", "--verbose", action="store_const", dest="log_level", const=logging.DEBUG,
                       default=default, help="debug messages too")


def build_parser() -> argparse.ArgumentParser:
    """The `open4m` parser with every verb registered (imports no torch)."""
    parser = argparse.ArgumentParser(
        prog="open4m",
        description="open4m: massively multimodal masked modeling (4M) — load, train, generate, evaluate.",
        epilog="`open4m VERB --help` describes one verb. Exit codes: 0 ok, 1 no verb, 2 user error.",
    )
    _add_verbosity(parser, logging.INFO)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    for verb in sub.choices.values():  # -q/-v also after the verb; SUPPRESS keeps a flag given before it
        _add_verbosity(verb, argparse.SUPPRESS)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(level: int) -> tuple[logging.Logger, logging.Handler, int]:
    logger = logging.getLogger("open4m")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    return logger, handler, previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `open4m` verb; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    logger, handler, previous = _configure_logging(args.log_level)
    try:
        return int(args.handler(args) or 0)
    except Open4mError as err:  # a user error: one line, no traceback
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
        print(f"open4m {args.command}: error: {message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"open4m {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `open4m info | head`: the reader left; silence the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:  # leave the caller's logging as it was (tests call main() many times in one process)
        logger.removeHandler(handler)
        logger.setLevel(previous)


if __name__ == "__main__":
    sys.exit(main())
