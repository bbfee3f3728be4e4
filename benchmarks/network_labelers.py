"""Speed of the network labelers (hed_edge, caption_emb) on 8 real photos, as `open4m label` runs them.

    python benchmarks/network_labelers.py --threads 2

Needs the labelers extra (docs/data.md). The photos are the ones scikit-image and scikit-learn ship
(astronaut, chelsea, coffee, rocket, immunohistochemistry, the motorcycle stereo pair's left view,
china, flower; 300x451 to 500x741 pixels), each with a one-line caption. Prints the time to load
each model, the labelling rate at the photos' own size (and for HED also at 256 px on the long side)
(wall clock and CPU seconds of all threads: on a shared machine the second is the steadier one) and
the wall time of the whole `open4m label` command in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAPTIONS = {
    "astronaut": "An astronaut in an orange suit smiles in front of a flag and a model space shuttle.",
    "chelsea": "A tabby cat looks at the camera.",
    "coffee": "A cup of coffee with latte art on a saucer.",
    "rocket": "A rocket on its launch pad under a blue sky.",
    "immunohistochemistry": "A stained tissue sample seen through a microscope.",
    "motorcycle": "A motorcycle parked in front of a wall.",
    "china": "A pagoda-roofed building among trees.",
    "flower": "A pink flower in close-up.",
}


def write_photos(root: Path, side: int | None = None) -> None:
    """The 8 photos as JPEGs (resized to `side` on the long side when given) and their captions."""
    import cv2
    import skimage.data as data
    from sklearn.datasets import load_sample_images

    from open4m.data import codecs

    sk = load_sample_images()
    images = {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket",
                                                       "immunohistochemistry")}
    images["motorcycle"] = data.stereo_motorcycle()[0]
    images.update(zip(("china", "flower"), sk.images))
    (root / "caption").mkdir(parents=True)
    for name, image in images.items():
        if side:
            scale = side / max(image.shape[:2])
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        (root / f"{name}.jpg").write_bytes(codecs.encode(image, ".jpg", "rgb"))
        (root / "caption" / f"{name}.txt").write_text(CAPTIONS[name] + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from open4m.data.labelers import CaptionEmbedding, HedEdges, label_folder

    print(f"# network labelers — {platform.machine()}, {args.threads} torch threads, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print("| labeler | photos | model load s | label s (wall) | photos/s (wall) | CPU s per photo |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for side in (None, 256):
            root = Path(tmp) / f"photos{side or ''}"
            write_photos(root, side)
            for labeler in (HedEdges(), CaptionEmbedding()):
                if side and labeler.name == "caption_emb":
                    continue  # captions do not depend on the photos' size
                t0 = time.perf_counter()
                labeler.net() if isinstance(labeler, HedEdges) else labeler._load()
                t1, c1 = time.perf_counter(), time.process_time()
                stats = label_folder(root, labeler, batch_size=args.batch_size, progress=False)
                t2, c2 = time.perf_counter(), time.process_time()
                what = "own size (300-741 px)" if side is None else f"{side} px"
                what = "one caption each" if labeler.name == "caption_emb" else what
                print(f"| {labeler.name} ({what}) | {stats['labeled']} | {t1 - t0:.2f} | {t2 - t1:.2f} | "
                      f"{stats['labeled'] / (t2 - t1):.2f} | {(c2 - c1) / stats['labeled']:.2f} |", flush=True)
        root = Path(tmp) / "cli"
        write_photos(root)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        cli = Path(sys.executable).with_name("open4m")
        t0 = time.perf_counter()
        subprocess.run([str(cli), "-q", "label", "--data", str(root), "-m", "hed_edge", "caption_emb"],
                       check=True, env=env, capture_output=True)
        print(f"\n`open4m label -m hed_edge caption_emb` on the 8 photos, fresh process: "
              f"{time.perf_counter() - t0:.1f} s wall")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
