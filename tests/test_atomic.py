import os

import pytest

from open4m.atomic import atomic_write, write_atomic, write_text_atomic


def test_writes_replace_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    write_text_atomic(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_refuses_to_overwrite_when_asked(tmp_path):
    target = write_text_atomic(tmp_path / "keep.txt", "mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_text_atomic(target, "theirs", overwrite=False)
    assert target.read_text() == "mine"


def test_failed_write_keeps_the_old_file(tmp_path):
    target = write_atomic(tmp_path / "f.bin", b"old")

    def boom(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_files_get_the_usual_mode_whatever_the_writer_creates(tmp_path):
    import os

    from safetensors.torch import save_file

    import torch
    from open4m.atomic import atomic_write

    path = atomic_write(tmp_path / "w.safetensors", lambda tmp: save_file({"a": torch.zeros(1)}, str(tmp)))
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # safetensors alone would leave 0600
