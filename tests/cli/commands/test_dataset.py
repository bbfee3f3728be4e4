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


def test_photos_are_written_split_with_captions(tmp_path, capsys):
    import pytest

    pytest.importorskip("skimage", reason="the example photos need scikit-image (pip install 'open4m[labelers]')")
    pytest.importorskip("sklearn", reason="the example photos need scikit-learn (pip install 'open4m[labelers]')")
    assert main(["dataset", "photos", "--out", str(tmp_path / "photos")]) == 0
    assert "wrote 16 photos" in capsys.readouterr().out
    assert len(list((tmp_path / "photos/train/rgb").glob("*.jpg"))) == 12
    assert len(list((tmp_path / "photos/val/caption").glob("*.txt"))) == 4
    assert main(["dataset", "photos", "--out", str(tmp_path / "photos")]) == 2  # never over a user's files
    assert "--overwrite" in capsys.readouterr().err
