"""The errors a user can act on: one hierarchy, one exit code, one line each.

Library code raises these at the boundary where the user can fix the problem (a recipe, an option,
a file, a name); the message names the problem AND the fix, on one line. The CLI catches
:class:`Open4mError` only, prints ``open4m VERB: error: <message>`` and exits with ``exit_code`` (2).
Every other exception is a bug and keeps its traceback.

Each subclass also inherits the builtin it replaces, so code written against the builtins
(``except ValueError``, ``except FileNotFoundError``, ``except KeyError``) keeps working.

This module is the bottom of the package: it imports nothing from open4m.
"""

from __future__ import annotations

__all__ = ["Open4mError", "ConfigError", "DataError", "NotFound", "OutputExists", "CheckpointError", "UnknownNameError"]


class Open4mError(Exception):
    """A user error: bad input, not a bug. ``str(err)`` is the one-line message shown to the user."""

    exit_code: int = 2


class ConfigError(Open4mError, ValueError):
    """A bad recipe key, option or value (out of range, wrong type, contradicting another one)."""


class DataError(Open4mError, ValueError):
    """Input data that cannot be used: corrupt or unreadable files, wrong shapes, dtypes or layouts."""


class NotFound(Open4mError, FileNotFoundError):
    """A file, folder, model or tokenizer that is not where the user said (or could not be fetched)."""


class OutputExists(Open4mError, FileExistsError):
    """An output that is there already and was not asked to be replaced (nothing a user saved is overwritten)."""


class CheckpointError(Open4mError, ValueError):
    """A checkpoint that cannot be loaded as asked: unreadable, truncated, or not matching the model."""


class UnknownNameError(Open4mError, KeyError):
    """An unknown name (modality, preset, task, ...); the message suggests the closest known names."""

    def __str__(self) -> str:  # KeyError quotes its message (repr); a user should read plain text
        return str(self.args[0]) if self.args else ""
