"""`open4m serve`: its options, a missing demo extra, bad ports, and the page served by the verb itself."""

from __future__ import annotations

import socket
import sys
import urllib.request

import pytest

from open4m.cli import build_parser, main


def test_help_and_defaults():
    args = build_parser().parse_args(["serve"])
    assert (args.model, args.host, args.port) == (None, "127.0.0.1", 7860)
    args = build_parser().parse_args(["serve", "--model", "4M-21_B", "--host", "0.0.0.0", "--port", "8080"])
    assert (args.model, args.host, args.port) == ("4M-21_B", "0.0.0.0", 8080)


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "open4m serve: error: open4m serve needs Gradio, the optional demo extra: pip install 'open4m[demo]'"


def test_bad_port(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err


def test_port_in_use_is_one_line(monkeypatch, capsys):
    pytest.importorskip("gradio", reason="the serve page needs the demo extra: pip install 'open4m[demo]'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_verb_serves_the_page(monkeypatch):
    pytest.importorskip("gradio", reason="the serve page needs the demo extra: pip install 'open4m[demo]'")
    import open4m.serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = {}

    def serve_in_background(model, host, port, block):  # the verb's call, without blocking the test
        served["url"] = real(model, host, port, block=False)
        return served["url"]

    real = open4m.serve.serve
    monkeypatch.setattr(open4m.serve, "serve", serve_in_background)
    assert main(["serve", "--port", str(port)]) == 0
    try:
        assert served["url"] == f"http://127.0.0.1:{port}/"
        assert urllib.request.urlopen(served["url"] + "config", timeout=30).status == 200
    finally:
        import gradio

        gradio.close_all()
