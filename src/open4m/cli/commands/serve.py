"""`open4m serve`: the any-to-any web page (Gradio; `pip install 'open4m[demo]'`).

    open4m serve                                  # the shipped world model, http://127.0.0.1:7860
    open4m serve --model 4M-21_B --port 8080      # any released name, Hub id or local model folder

Pick an example scene or upload a photo, choose the conditions (RGB, caption, boxes, palette,
metadata, ...) and the targets, edit the caption, boxes, palette and metadata, set steps,
temperatures, guidance and seed, and press Generate. The page runs the same functions as
`open4m generate`. Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="an interactive any-to-any page in the browser (needs open4m[demo])",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="a released name, a Hub id or a local model folder (default: the shipped world model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.errors import ConfigError

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: give a port between 1 and 65535")
    from open4m.serve.app import check_address, import_gradio

    import_gradio()  # a missing extra or a taken port fails before the model loads
    check_address(args.host, args.port)
    from open4m.serve import serve

    print(f"open4m serve: loading {args.model or 'the shipped world model'}; Ctrl-C stops the server")
    serve(args.model, args.host, args.port, block=True)
    return 0
