"""`open4m serve`: an interactive any-to-any page in the browser (the optional `demo` extra, Gradio).

`Studio` (`open4m.serve.session`) holds the model and does everything the page does, with no Gradio
import, so it is tested and usable directly; `build_app` / `launch` (`open4m.serve.app`) put it on a
page. The page and `open4m generate` run the same request functions (`open4m.generation.request`).
"""

from __future__ import annotations

from .app import build_app, launch
from .session import ROLES, Result, Scene, Studio

__all__ = ["Studio", "Scene", "Result", "ROLES", "build_app", "launch", "serve"]


def serve(model=None, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True) -> str:
    """Load ``model`` (default: the shipped world model), build the page and serve it; returns its URL."""
    return launch(build_app(Studio(model)), host, port, block=block)
