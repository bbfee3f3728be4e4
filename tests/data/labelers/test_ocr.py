"""ocr: RapidOCR (PP-OCRv4) on text rendered into a real photo; and all three people/text labelers from the CLI
on a plain photo folder, tokenized into a batch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from open4m.data import codecs
from open4m.data.labelers import LABELERS, label_folder, read_provenance
from open4m.errors import ConfigError
from open4m.tokenizers.sequences import CODECS

pytest.importorskip("rapidocr_onnxruntime", reason="ocr runs RapidOCR (the labelers extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the labelers extra) ships the sample photos")

from open4m.data.labelers.ocr import OcrBoxes  # noqa: E402 - after the skips

SIGN, PRICE = "OPEN 4M CAFE", "EXIT 12"


def _font(size: int):
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib ships the DejaVu font the text is drawn in")
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


@pytest.fixture(scope="module")
def signed() -> tuple[np.ndarray, dict[str, list[float]]]:
    """skimage's coffee photo with a black-on-white sign and white text on the dark table; text -> true box."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(skimage_data.coffee())
    w, h = image.size
    draw = ImageDraw.Draw(image)
    truth = {}
    for text, at, size, ink in ((SIGN, (50, 35), 40, (0, 0, 0)), (PRICE, (330, 330), 32, (255, 255, 255))):
        x0, y0, x1, y1 = draw.textbbox(at, text, font=_font(size))
        if ink == (0, 0, 0):
            draw.rectangle([x0 - 12, y0 - 12, x1 + 12, y1 + 12], fill=(255, 255, 255))
        draw.text(at, text, font=_font(size), fill=ink)
        truth[text] = [x0 / w, y0 / h, x1 / w, y1 / h]
    return np.asarray(image), truth


@pytest.fixture(scope="module")
def ocr() -> OcrBoxes:
    return OcrBoxes()


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_reads_rendered_text_where_it_was_drawn(ocr, signed):
    image, truth = signed
    lines = ocr({"rgb": image})
    assert [line["text"] for line in lines] == [SIGN, PRICE]  # reading order: top to bottom
    for line in lines:
        assert set(line) == {"box", "text", "score"} and line["score"] > 0.9
        assert _iou(line["box"], truth[line["text"]]) > 0.6, (line, truth[line["text"]])
    text = CODECS["ocr"].to_text(lines)
    assert text.startswith("v0=") and "open 4m cafe" in text and "exit 12" in text


def test_photos_without_text_give_no_boxes(ocr):
    assert ocr({"rgb": skimage_data.chelsea()}) == []
    assert CODECS["ocr"].to_text([]) == ""


def test_min_score_and_missing_extra(monkeypatch):
    with pytest.raises(ConfigError, match="min_score"):
        OcrBoxes(min_score=1.5)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rapidocr_onnxruntime" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        LABELERS["ocr"]()
    assert "\n" not in str(err.value) and "pip install 'open4m[labelers]'" in str(err.value)
    assert "rapidocr-onnxruntime==1.4.4" in str(err.value)


def test_label_cli_on_a_photo_folder_then_tokenize_a_batch(tmp_path, signed, capsys):
    """`open4m label --data PHOTOS --modality keypoints person_mask ocr`, then keypoints and ocr as tokens."""
    pytest.importorskip("mediapipe", reason="keypoints/person_mask run MediaPipe Pose (the labelers extra)")
    import torch

    from open4m.cli import main
    from open4m.data.formats import FolderDataset
    from open4m.data.loader import TokenizingDataset
    from open4m.data.batches import batch_loader
    from open4m.data.masking import AlphaMixture, DirichletMasking
    from open4m.tokenizers import TextTokenizer

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    (photos / "astronaut.jpg").write_bytes(codecs.encode(skimage_data.astronaut(), ".jpg", "rgb"))
    (photos / "trip" / "cafe.png").write_bytes(codecs.encode(signed[0], ".png", "rgb"))
    assert main(["label", "--data", str(photos), "--modality", "keypoints", "person_mask", "ocr"]) == 0
    out = capsys.readouterr().out
    assert "keypoints: 2 labeled" in out and "person_mask: 2 labeled" in out and "ocr: 2 labeled" in out
    assert len(json.loads((photos / "keypoints" / "astronaut.json").read_text())) == 1
    assert json.loads((photos / "keypoints" / "trip" / "cafe.json").read_text()) == []
    assert [b["text"] for b in json.loads((photos / "ocr" / "trip" / "cafe.json").read_text())] == [SIGN, PRICE]
    assert (photos / "person_mask" / "astronaut.png").is_file()
    assert set(read_provenance(photos)) == {"keypoints", "person_mask", "ocr"}
    assert main(["label", "--data", str(photos), "--modality", "ocr"]) == 0
    assert "ocr: 0 labeled, 2 already present" in capsys.readouterr().out

    # the same files in the aligned layout (DIR/<modality>/<key>), tokenized on the fly
    for key, rel in (("astronaut", "astronaut"), ("cafe", "trip/cafe")):
        rgb = next(photos.glob(f"{rel}.*"))
        for m, src in (("rgb", rgb), ("keypoints", photos / "keypoints" / f"{rel}.json"),
                       ("ocr", photos / "ocr" / f"{rel}.json"), ("person_mask", photos / "person_mask" / f"{rel}.png")):
            (tmp_path / "data" / m).mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / m / f"{key}{src.suffix}").write_bytes(src.read_bytes())
    text = TextTokenizer.train(["person none open cafe exit 4m 12"] * 5, vocab_size=4400)
    data = TokenizingDataset(FolderDataset(tmp_path / "data"), image_size=224, text_tokenizer=text,
                             sequences={"keypoints": "keypoints", "ocr": "ocr"}, train=False)
    items = [data[0], data[1]]  # astronaut, cafe (centre crops)
    assert items[0]["keypoints"][0].item() == text.token_to_id("person") and len(items[0]["keypoints"]) == 104
    assert text.decode(items[1]["keypoints"]) == "none"
    cafe = CODECS["ocr"].decode(items[1]["ocr"], text)
    assert [b["text"] for b in cafe] == ["open 4m cafe", "exit 12"]
    assert cafe[0]["box"][0] < 0.1 < cafe[1]["box"][0]  # the centre crop cut the sign's left edge: x0 clipped to 0
    masker = DirichletMasking(AlphaMixture.single(data.modality_names, 1.0), 64, 64)
    batch = next(batch_loader(data, masker, batch_size=2, seed=0))
    for m in ("keypoints", "ocr"):  # span-masked: inputs and targets side by side, 2 * (256 + 1) slots
        assert batch[m]["tensor"].shape == (2, 514) and batch[m]["tensor"].dtype == torch.long
