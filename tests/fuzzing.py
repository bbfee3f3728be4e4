"""What every fuzz test asks of a call: a value, or one of our own one-line errors; anything else is a bug."""

from __future__ import annotations

from open4m.errors import Open4mError


def ours_or_value(call):
    """Run `call`; an Open4mError is a fine answer (one line), anything else propagates as the bug it is."""
    try:
        return call()
    except Open4mError as err:
        assert str(err) and "\n" not in str(err), f"not a one-line message: {err!r}"
        return err
