"""Speed of the people and text labelers (keypoints, person_mask, ocr) on the 16 example photos.

    python benchmarks/people_text_labelers.py

Needs the labelers extra (docs/labelers-people-text.md). The photos are the ones scikit-image,
scikit-learn and matplotlib ship, as `open4m.recipes.photos.sample_photos` writes them (172 to 640 px on
the long side; three with people, two with text). Prints, per labeler, the time to build it and run it
on its first photo (model loading), the labelling rate of `label_folder` over all 16 photos (decode,
label, write) and what it found; then the wall time of `open4m label --data PHOTOS --modality keypoints
person_mask ocr` in a fresh process (imports and model loading included).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    from PIL import Image

    import open4m.data.formats  # noqa: F401 - torch imported before timing, as the CLI would have it
    from open4m.data.labelers import LABELERS, label_folder
    from open4m.recipes.photos import sample_photos

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        sample_photos(tmp)
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for f in sorted(Path(tmp).glob("*/rgb/*.jpg")):  # one plain folder of 16 JPEGs
            (photos / f.name).write_bytes(f.read_bytes())
        first = np.asarray(Image.open(photos / "astronaut.jpg").convert("RGB"))
        print("| labeler | load + first photo | photos/s (16 photos) | found |")
        print("| --- | --- | --- | --- |")
        for name in ("keypoints", "person_mask", "ocr"):
            t0 = time.perf_counter()
            labeler = LABELERS[name]()
            labeler({"rgb": first})
            load = time.perf_counter() - t0
            t0 = time.perf_counter()
            n = label_folder(photos, labeler, progress=False)["labeled"]
            rate = n / (time.perf_counter() - t0)
            files = sorted((photos / name).glob("*"))
            if name == "keypoints":
                found = f"{sum(bool(json.loads(f.read_text())) for f in files)} photos with people"
            elif name == "ocr":
                lines = [(f.stem, b["text"], b["score"]) for f in files for b in json.loads(f.read_text())]
                found = f"{len(lines)} text lines: " + ", ".join(f"{k}: {t!r} {s:.2f}" for k, t, s in lines)
            else:
                found = f"{len(files)} masks"
            print(f"| `{name}` | {load:.2f} s | {rate:.1f} | {found} |")
        for name in ("keypoints", "person_mask", "ocr"):
            for f in (photos / name).iterdir():
                f.unlink()
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "open4m", "label", "--data", str(photos), "--modality", "keypoints",
                        "person_mask", "ocr"], check=True, capture_output=True)
        print(f"\nopen4m label --modality keypoints person_mask ocr, 16 photos, fresh process: "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
