"""The page's model (loaded once per session) and a running server (started once per test module)."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(scope="session")
def studio():
    from open4m.serve import Studio

    return Studio()  # the shipped world model: no download


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(studio):
    """(url, app): the page served on a free loopback port, closed after the module."""
    pytest.importorskip("gradio", reason="the serve page needs the demo extra: pip install 'open4m[demo]'")
    from open4m.serve import build_app, launch

    app = build_app(studio)
    url = launch(app, "127.0.0.1", free_port(), block=False)
    yield url, app
    app.close()
