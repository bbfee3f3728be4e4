"""The `open4m` command line (also `python -m open4m` and `python -m open4m.cli`). Thin verbs over the library.

Every verb module listed in `COMMAND_MODULES` exposes `register(subparsers)`; its handler imports
the library (torch, numpy, ...) only when it runs, so `open4m --help` and `open4m VERB --help`
import no torch.

Errors: a user error is an `open4m.errors.Open4mError`; `main` prints it as one line,
``open4m VERB: error: <message>``, on stderr and returns its `exit_code` (2). A verb may turn the
specific errors it knows how to explain (an unreadable input image, an unwritable output path) into
an `Open4mError`. Every other exception is a bug and propagates with its traceback.

Exit codes: 0 success; 1 no verb given (the help is printed on stdout); 2 a user error (bad
arguments included, as argparse does, with the closest verb, option or choice suggested); 130 interrupted (Ctrl-C); 141 stdout closed early (`| head`).

Logging: `main` sends the library's `logging` records (the ``open4m`` logger tree) to stderr as plain
messages: INFO and above by default, WARNING and above with ``-q/--quiet``, DEBUG with ``-v/--verbose``.
The library itself never configures logging. Python warnings the library raises (`warnings.warn`: a photo
resized, a corrupt file skipped) print as ``open4m VERB: warning: <message>``, one line each, not as Python's
``file.py:LINE: Category: ...`` and the source line.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import re
import sys
import warnings
from typing import NoReturn, Sequence

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


class _Parser(argparse.ArgumentParser):
    """argparse that suggests the closest name: Python 3.11's argparse names a misspelt verb, option or
    choice without saying what was meant. Still exit code 2 and one `open4m VERB: error:` line."""

    def error(self, message: str) -> NoReturn:
        verb = re.match(r"argument COMMAND: invalid choice: '(.*?)' \(", message)
        if verb:  # a misspelt verb: say it as the verb's own error line
            self.print_usage(sys.stderr)
            self.exit(2, f"open4m {verb.group(1)}: error: unknown command {verb.group(1)!r}"
                         f"{_did_you_mean(verb.group(1), _choices(message))} (`open4m --help` lists every command)\n")
        super().error(_with_hint(message, self))


def _choices(message: str) -> list[str]:
    """The quoted names of argparse's `(choose from 'a', 'b')`."""
    listed = message.rsplit("(choose from ", 1)[-1]
    return re.findall(r"'((?:[^'\\]|\\.)*)'", listed)


def _did_you_mean(name: str, known: Sequence[str], quote: bool = True) -> str:
    """`; did you mean 'x'?` for the closest of ``known`` (empty when none is close)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close and quote else f"; did you mean {close[0]}?" if close else ""


def _with_hint(message: str, parser: argparse.ArgumentParser) -> str:
    """argparse's message with the fix: the closest choice or option, or the kind of value wanted."""
    choice = re.search(r"invalid choice: '(.*?)' \(choose from ", message)
    if choice:
        return message + _did_you_mean(choice.group(1), _choices(message))
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        options = [s for action in parser._actions for s in action.option_strings]
        for word in unknown.group(1).split():
            if word.startswith("-"):
                hint = _did_you_mean(word.split("=", 1)[0], options, quote=False)
                if hint:
                    return message + hint
        return message + f"; `{parser.prog} --help` lists the options"
    if re.search(r"invalid int value: ", message):
        return message + "; give a whole number"
    if re.search(r"invalid float value: ", message):
        return message + "; give a number"
    return message


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_const", dest="log_level", const=logging.WARNING,
                       default=default, help="only warnings, errors and results (no schedules or progress bars)")
    group.add_argument("-v", "--verbose", action="store_const", dest="log_level", const=logging.DEBUG,
                       default=default, help="debug messages too")


def build_parser() -> argparse.ArgumentParser:
    """The `open4m` parser with every verb registered (imports no torch)."""
    parser = _Parser(
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


def _warning_line(command: str):
    """`warnings.formatwarning` for a verb: a user reads the message, not the library's file and source line."""

    def format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001 (its signature)
        text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        return f"open4m {command}: warning: {text}\n"

    return format_warning


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `open4m` verb; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list) and not any(w.startswith("-") for w in extra):
        # `train RECIPE a=b -q c=d`: argparse fills a `nargs="*"` positional from one run of words only, so the
        # overrides after an option came back unrecognised; they are overrides all the same
        args.overrides += extra
        extra = []
    if extra:  # said by the verb's parser, which knows the verb's options (and suggests the closest)
        verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        verbs.get(getattr(args, "command", None) or "", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    if args.log_level > logging.INFO and hasattr(args, "no_progress"):  # -q: no progress bars either
        args.no_progress = True
    logger, handler, previous = _configure_logging(args.log_level)
    formatwarning, warnings.formatwarning = warnings.formatwarning, _warning_line(args.command)
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
    finally:  # leave the caller's logging and warnings as they were (tests call main() many times in one process)
        logger.removeHandler(handler)
        logger.setLevel(previous)
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
