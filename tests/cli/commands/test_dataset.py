"""`open4m dataset`: its help imports nothing heavy, and a missing scikit-image is a one-line install hint."""

import importlib.util

from open4m.cli import main


def test_missing_scikit_image_names_the_extra(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    assert main(["dataset", "motorcycle", "--out", str(tmp_path / "mc")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'open4m[labelers]'" in err and "Traceback" not in err and not (tmp_path / "mc").exists()


def test_unknown_dataset_is_an_argparse_error(capsys):
    try:
        main(["dataset", "cifar", "--out", "x"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "invalid choice: 'cifar'" in capsys.readouterr().err
