"""Pre-tokenization: run a tokenizer over an aligned folder dataset once, store the tokens beside it.

Layout (the folder layout of :mod:`open4m.data.formats`): ``root/<modality>/<key>.<ext>`` in,
``root/tok_<modality>/<key>.npy`` out, an integer array ``(n_crops, n_tokens)``. Crops are chosen
once per sample and stored in ``root/crop_settings/<key>.npy`` as rows ``(top, left, h, w, flip)``;
every modality tokenized later reuses them, so all ``tok_*`` of a sample describe the same crops
(row 0 is always the unflipped centre square). Existing outputs are skipped, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .vqvae import VQTokenizer

__all__ = ["PretokenizeReport", "sample_crops", "pretokenize_folder"]

CROP_DIR = "crop_settings"


@dataclass
class PretokenizeReport:
    written: int
    skipped: int
    out_dir: Path


def sample_crops(height: int, width: int, n_crops: int, rng: np.random.Generator, min_scale: float = 0.2) -> np.ndarray:
    """Row 0: the largest centred square, unflipped; then random-resized-crop boxes (area scale
    ``min_scale``..1, aspect 3/4..4/3) with a 50% horizontal flip. -> int array (n_crops, 5)."""
    side = min(height, width)
    rows = [((height - side) // 2, (width - side) // 2, side, side, 0)]
    area = height * width
    while len(rows) < n_crops:
        for _ in range(10):
            target = area * rng.uniform(min_scale, 1.0)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w = int(round(math.sqrt(target * ratio)))
            h = int(round(math.sqrt(target / ratio)))
            if 0 < w <= width and 0 < h <= height:
                rows.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w,
                             int(rng.random() < 0.5)))
                break
        else:
            rows.append(rows[0][:4] + (int(rng.random() < 0.5),))
    return np.asarray(rows[:n_crops], dtype=np.int64)


def _crop(arr: np.ndarray, row: np.ndarray, is_normal: bool) -> np.ndarray:
    top, left, h, w, flip = (int(v) for v in row)
    out = arr[top:top + h, left:left + w]
    if flip:
        out = out[:, ::-1].copy()
        if is_normal:  # a mirrored surface points the other way along x
            out[..., 0] = 1.0 - out[..., 0]
    return np.ascontiguousarray(out)


def _as_natural(value: np.ndarray, modality: str, input_kind: str) -> np.ndarray:
    """Decoded file -> what the tokenizer's preprocessing expects (normals [-1, 1] -> [0, 1])."""
    if input_kind == "image" and modality.split("@")[0] == "normal" and value.dtype != np.uint8:
        return (value.astype(np.float32) + 1.0) / 2.0
    return value


def _key_rng(key: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def pretokenize_folder(root: str | Path, modality: str, tokenizer: VQTokenizer, *, out_name: str | None = None,
                       n_crops: int = 1, batch_size: int = 16, image_size: int | None = None, seed: int = 0,
                       progress: bool = True) -> PretokenizeReport:
    """Tokenize every ``root/<modality>`` file (see the module docstring for the layout)."""
    from tqdm.auto import tqdm

    from ..data.codecs import write_atomic
    from ..data.formats import FolderDataset

    root = Path(root)
    data = FolderDataset(root, modalities=[modality])
    out_dir = root / (out_name or f"tok_{modality.split('@')[0]}")
    pre = tokenizer.preprocessor
    croppable = pre.input in ("image", "class_map", "depth")
    if not croppable and n_crops != 1:
        raise ValueError(f"{pre.input} inputs are not images: they cannot be cropped, use n_crops=1")
    size = image_size or tokenizer.config.image_size
    resize = dataclasses.replace(pre, size=size if croppable else None)
    dtype = np.int16 if tokenizer.vocab_size <= np.iinfo(np.int16).max + 1 else np.int32
    pending: list[tuple[str, torch.Tensor]] = []
    written = skipped = 0

    def flush() -> None:
        nonlocal written
        if not pending:
            return
        batch = torch.cat([x for _, x in pending])
        with torch.inference_mode():
            tokens = tokenizer.encode(batch).reshape(batch.shape[0], -1).cpu().numpy()
        start = 0
        for key, x in pending:
            rows = tokens[start:start + x.shape[0]]
            start += x.shape[0]
            buf = _npy_bytes(rows.astype(dtype))
            write_atomic(out_dir / f"{key}.npy", buf)
            written += 1
        pending.clear()

    for key in tqdm(data.keys, desc=f"tokenize {modality}", disable=not progress):
        if (out_dir / f"{key}.npy").exists():
            skipped += 1
            continue
        sample = data.load(key)
        if sample is None or modality not in sample:
            continue
        value = _as_natural(np.asarray(sample[modality]), modality, pre.input)
        if croppable:
            crops = _crop_settings(root, key, value.shape[0], value.shape[1], n_crops, seed)
            views = [_crop(value, row, modality.split("@")[0] == "normal") for row in crops]
            x = torch.cat([resize.to_model(v) for v in views])
        else:
            x = resize.to_model(value)
        pending.append((key, x))
        if sum(t.shape[0] for _, t in pending) >= batch_size:
            flush()
    flush()
    return PretokenizeReport(written, skipped, out_dir)


def _crop_settings(root: Path, key: str, height: int, width: int, n_crops: int, seed: int) -> np.ndarray:
    """The sample's stored crops (shared by all modalities), created on first use."""
    from ..data.codecs import write_atomic

    path = root / CROP_DIR / f"{key}.npy"
    if path.exists():
        crops = np.load(path, allow_pickle=False)
        if crops.ndim != 2 or crops.shape[1] != 5 or len(crops) < n_crops:
            raise ValueError(f"{path} holds {crops.shape} crop settings; need ({n_crops}, 5) — delete it to redo crops")
        return crops[:n_crops]
    crops = sample_crops(height, width, n_crops, _key_rng(key, seed))
    write_atomic(path, _npy_bytes(crops))
    return crops


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
