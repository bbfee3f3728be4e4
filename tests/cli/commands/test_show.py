from PIL import Image

from open4m.cli import main
from open4m.data.synthetic import write_dataset


def test_show_writes_contact_sheet(tmp_path, capsys):
    write_dataset(tmp_path / "w", n=2, size=32, progress=False)
    out = tmp_path / "sheet.png"
    assert main(["show", "--data", str(tmp_path / "w"), "--index", "1", "--out", str(out), "--tile", "64"]) == 0
    img = Image.open(out)
    assert img.width >= 64 * 3 and img.height >= 64
    assert main(["show", "--data", str(tmp_path / "w"), "--index", "5", "--out", str(tmp_path / "new.png")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["show", "--data", str(tmp_path / "w"), "--out", str(out)]) == 2  # never replaced by surprise
    assert "--overwrite" in capsys.readouterr().err
    assert main(["show", "--data", str(tmp_path / "w"), "--out", str(out), "--overwrite"]) == 0
