"""Pre-tokenization: run a tokenizer over an aligned dataset once and store the tokens beside it.

Layouts (those of :mod:`open4m.data.formats`): folders ``root/<modality>/<key>.<ext>`` in,
``root/tok_<modality>/<key>.npy`` out, an integer array ``(n_crops, n_tokens)``; or shards
``root/<modality>/shard-NNNNN.tar`` in, ``root/tok_<modality>/shard-NNNNN.tar`` out (same keys, the
token modality added to ``index.json``). Crops are chosen once per sample and stored in
``root/crop_settings/`` (``<key>.npy`` files or shards) as rows ``(top, left, h, w, flip)``;
every modality tokenized later reuses them, so all ``tok_*`` of a sample describe the same crops
(row 0 is always the unflipped centre square). Existing outputs are skipped, so an interrupted run
resumes where it stopped.

Sequence modalities (``caption``, ``det``, ``color_palette``, ``metadata``, ``human_poses``,
``sam_instance``, ``keypoints``, ``ocr``) go through their codecs and the WordPiece tokenizer into
``tok_<modality>/<key>.npy``: ``(n_crops, L)`` token ids, rows padded with [PAD] = 0. Row k of
``det`` / ``keypoints`` / ``ocr`` holds the boxes re-projected into crop k of ``crop_settings``
(the sample's image gives the size the crop rows refer to), so they describe the same view as the
image tokens of row k; palettes and metadata draw their size / field order per row.
SAM instance masks (``sam_mask``) are not cropped with the image: each mask is cut to the box of
its pixels and resized to the tokenizer's 64 x 64, one row per file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import modalities
from ..errors import ConfigError, DataError
from ..modalities import Kind
from ..tokenizers.vqvae import VQTokenizer
from .codecs import image_role, is_aligned_image
from .sequence_inputs import CROP_DEPENDENT, crop_sequence, sequence_input
from .transforms import Crop, instance_box_crop

__all__ = ["PretokenizeReport", "sample_crops", "pretokenize", "is_sequence_modality"]

#: (height, width) of a sample's image, or None when the sample has none.
SizeOf = Callable[[str], Optional[tuple]]

CROP_DIR = "crop_settings"

logger = logging.getLogger(__name__)


@dataclass
class PretokenizeReport:
    written: int
    skipped: int  # token files already there (a rerun resumes)
    out_dir: Path
    corrupt: list[str] = dataclasses.field(default_factory=list)  # input files skipped as unreadable: "path (why)"


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
    """Decoded file -> what the tokenizer's preprocessing expects (normals [-1, 1] -> [0, 1] for an image tokenizer,
    channels first for a feature tokenizer such as the world model's, which takes unit normals (3, H, W))."""
    if input_kind == "image" and modality.split("@")[0] == "normal" and value.dtype != np.uint8:
        return (value.astype(np.float32) + 1.0) / 2.0
    if input_kind == "features" and modality.split("@")[0] == "normal" and value.ndim == 3 and value.shape[-1] == 3:
        return np.ascontiguousarray(value.transpose(2, 0, 1))
    return value


def _key_rng(key: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _token_dtype(vocab_size: int) -> type:
    return np.int16 if vocab_size <= np.iinfo(np.int16).max + 1 else np.int32


def is_sequence_modality(modality: str) -> bool:
    """Whether a folder holds a sequence modality (text / JSON that the WordPiece tokenizer encodes).

    Sequence embeddings (``t5_caption``, ``caption_emb``) are an error here: the model reads their
    ``.npy`` arrays as they are, so there is nothing to tokenize.
    """
    try:
        kind = modalities.get(modality).kind
    except KeyError:
        return False
    if kind is Kind.SEQUENCE_EMBEDDING:
        raise ConfigError(f"{modality} holds embeddings the model reads as they are (.npy arrays (L, E)): nothing to "
                          f"tokenize; list {modality} in data.modalities and keep its folder beside the tokens")
    return kind is Kind.SEQUENCE


class _BatchEncoder:
    """Turns decoded samples into crops, batches them across samples, and hands each sample's tokens
    to ``sink(key, tokens)``; ``crops_for(key, h, w)`` supplies the shared crop rows."""

    needs_size = False  # the crop rows come from the image itself

    def __init__(self, tokenizer: VQTokenizer, modality: str, n_crops: int, batch_size: int,
                 image_size: int | None) -> None:
        pre = tokenizer.preprocessor
        images = pre.input in ("image", "class_map", "depth")
        self.instance_mask = image_role(modality) == "mask"  # a SAM mask has its own frame, not the image's
        self.croppable = images and not self.instance_mask
        # before the n_crops check below: its advice (n_crops=1) would only lead to this refusal
        if pre.input == "features" and image_role(modality) in ("depth", "edge", "unit"):
            # e.g. the world model's tokenizers: they take the procedural world's own encoding, made in memory
            raise ConfigError(
                f"this tokenizer reads {modality} already in its model's form (its preprocess input is 'features'), "
                f"not {modality} image files; tokenize them with a tokenizer that reads such files (a released 4M "
                f"tokenizer, or one trained by `open4m train-tokenizer --modality {modality.split('@')[0]}`)")
        if not self.croppable and n_crops != 1:
            what = "instance masks are cut to their own box" if self.instance_mask else f"{pre.input} inputs are not images"
            raise ConfigError(f"{what}: they cannot be cropped with the image, use n_crops=1")
        size = image_size or tokenizer.config.image_size
        self.pre = dataclasses.replace(pre, size=size if images else None)
        self.tokenizer, self.modality, self.n_crops, self.batch_size = tokenizer, modality, n_crops, batch_size
        self.dtype = _token_dtype(tokenizer.vocab_size)
        self.pending: list[tuple[str, torch.Tensor]] = []

    def add(self, key: str, value: Any, crops_for: Callable[[str, int, int], np.ndarray],
            sink: Callable[[str, np.ndarray], None], size: tuple | None = None) -> None:
        base = self.modality.split("@")[0]
        value = _as_natural(np.asarray(value), base, self.pre.input)
        if self.croppable:
            rows = crops_for(key, value.shape[0], value.shape[1])[: self.n_crops]
            x = torch.cat([self.pre.to_model(_crop(value, row, base == "normal")) for row in rows])
        else:
            x = self.pre.to_model(instance_box_crop(value) if self.instance_mask else value)
        self.pending.append((key, x))
        if sum(t.shape[0] for _, t in self.pending) >= self.batch_size:
            self.flush(sink)

    def flush(self, sink: Callable[[str, np.ndarray], None]) -> None:
        if not self.pending:
            return
        batch = torch.cat([x for _, x in self.pending])
        with torch.inference_mode():
            tokens = self.tokenizer.encode(batch).reshape(batch.shape[0], -1).cpu().numpy().astype(self.dtype)
        start = 0
        for key, x in self.pending:
            sink(key, tokens[start:start + x.shape[0]])
            start += x.shape[0]
        self.pending.clear()


class _SequenceEncoder:
    """One sample's sequence -> ``(n_crops, L)`` token ids through its codec and the text tokenizer.

    Row k of a crop-dependent modality (det, keypoints, ocr) re-projects its boxes into crop k, which
    needs the sample's image size (``size``); without an image there is nothing to crop, and one row
    is all that can be written. Palette sizes and metadata orders are drawn per row from (seed, key, k).
    """

    needs_size = True

    def __init__(self, tokenizer: Any, modality: str, n_crops: int, seed: int) -> None:
        from ..tokenizers.sequences import CODECS

        if modality not in CODECS:
            raise ConfigError(f"no sequence codec for {modality!r}; `open4m tokenize` encodes {sorted(CODECS)}")
        self.codec, self.tokenizer, self.modality, self.n_crops, self.seed = CODECS[modality], tokenizer, modality, \
            n_crops, seed
        self.cropped = modality in CROP_DEPENDENT
        self.dtype = _token_dtype(tokenizer.vocab_size)

    def add(self, key: str, value: Any, crops_for: Callable[[str, int, int], np.ndarray],
            sink: Callable[[str, np.ndarray], None], size: tuple | None = None) -> None:
        crops: list[tuple[Crop | None, int, int]]
        if size is not None:
            h, w = size
            crops = [(Crop.from_row(r), h, w) for r in crops_for(key, h, w)[: self.n_crops]]
        elif self.cropped and self.n_crops > 1:
            raise DataError(f"{self.modality} of sample {key!r}: {self.n_crops} crops need the sample's image (to know "
                            "what the crop rows cut); add an image modality folder (e.g. rgb) or use --n-crops 1")
        else:
            crops = [(None, 0, 0)] * self.n_crops
        rows = []
        for k, (crop, h, w) in enumerate(crops):
            rng = random.Random(f"{self.seed}:{key}:{k}")
            data = sequence_input(self.modality, crop_sequence(self.modality, value, crop, h, w), rng)
            rows.append(self.codec.encode(data, self.tokenizer, rng).reshape(-1))
        out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=self.dtype)  # [PAD] = 0 after each row
        for k, r in enumerate(rows):
            out[k, :len(r)] = r.numpy()
        sink(key, out)

    def flush(self, sink: Callable[[str, np.ndarray], None]) -> None:
        return None


def pretokenize(root: str | Path, modality: str, tokenizer: Any, *, out_name: str | None = None,
                n_crops: int = 1, batch_size: int = 16, image_size: int | None = None, seed: int = 0,
                progress: bool = True) -> PretokenizeReport:
    """Tokenize ``root/<modality>`` of a folder dataset or of webdataset shards (``root/index.json``).

    An image-like modality takes a VQ tokenizer (:class:`~open4m.tokenizers.VQTokenizer`); a sequence
    modality takes the text tokenizer (:class:`~open4m.tokenizers.TextTokenizer`).
    """
    from ..tokenizers.text import TextTokenizer
    from .formats import is_shard_root

    out_name = out_name or f"tok_{modality.split('@')[0]}"
    encoder: _BatchEncoder | _SequenceEncoder
    if is_sequence_modality(modality):
        if not isinstance(tokenizer, TextTokenizer):
            raise ConfigError(f"{modality} is a sequence modality: tokenize it with the text tokenizer (e.g. --tokenizer "
                              f"text), not a {type(tokenizer).__name__}")
        encoder = _SequenceEncoder(tokenizer, modality, n_crops, seed)
    else:
        if not isinstance(tokenizer, VQTokenizer):
            raise ConfigError(f"{modality} is not a sequence modality: tokenize it with an image/vector tokenizer "
                              f"(VQ-VAE, DiVAE, MLP VQ), not a {type(tokenizer).__name__}")
        encoder = _BatchEncoder(tokenizer, modality, n_crops, batch_size, image_size)
    run = _pretokenize_shards if is_shard_root(root) else _pretokenize_folder
    report = run(Path(root), modality, out_name, encoder, n_crops, seed, progress)
    if report.corrupt and not report.written and not report.skipped:
        raise DataError(f"none of the {modality} files under {root} can be read ({len(report.corrupt)} damaged, e.g. "
                        f"{report.corrupt[0]}); replace them, or point --data at the dataset that holds good ones")
    return report


def _image_folders(names: Any, modality: str) -> list[str]:
    """The pixel-aligned image modalities among ``names`` that can give a sample's size (rgb first)."""
    return sorted((n for n in names if n != modality and is_aligned_image(n)), key=lambda n: (n != "rgb", n))


def _size_of_file(path: Path) -> tuple[int, int] | None:
    if path.suffix.lower() == ".npy":
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape[:2])  # type: ignore[return-value]
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only
            return im.height, im.width
    except (UnidentifiedImageError, OSError) as err:  # its own modality skips it as corrupt; no size from it here
        logger.warning("cannot read the size of %s (%s)", path, err)
        return None


def _pretokenize_folder(root: Path, modality: str, out_name: str, encoder: _BatchEncoder, n_crops: int, seed: int,
                        progress: bool) -> PretokenizeReport:
    from tqdm.auto import tqdm

    from ..atomic import write_atomic
    from .formats import FolderDataset

    data = FolderDataset(root, modalities=[modality])
    out_dir = root / out_name
    report = PretokenizeReport(0, 0, out_dir)
    size_of = _folder_sizes(root, modality) if encoder.needs_size else (lambda key: None)

    def sink(key: str, tokens: np.ndarray) -> None:
        write_atomic(out_dir / f"{key}.npy", _npy_bytes(tokens))
        report.written += 1

    def crops_for(key: str, h: int, w: int) -> np.ndarray:
        path = root / CROP_DIR / f"{key}.npy"
        if path.exists():
            try:
                stored = np.load(path, allow_pickle=False)
            except (ValueError, EOFError, OSError) as err:
                raise DataError(f"{path} is not a readable crop settings file ({err or 'empty'}); delete it to redo "
                                "the crops of that sample (then re-tokenize its other modalities too)") from None
            return _check_crops(stored, n_crops, str(path))
        crops = sample_crops(h, w, n_crops, _key_rng(key, seed))
        write_atomic(path, _npy_bytes(crops))
        return crops

    for key in tqdm(data.keys, desc=f"tokenize {modality}", disable=not progress):
        if (out_dir / f"{key}.npy").exists():
            report.skipped += 1
            continue
        sample = data.load(key)
        if sample is not None and modality in sample:
            encoder.add(key, sample[modality], crops_for, sink, size_of(key))
    encoder.flush(sink)
    report.corrupt = [f"{path} ({why})" for path, why in data.corrupt_files.items()]
    return report


def _folder_sizes(root: Path, modality: str) -> SizeOf:
    """key -> (height, width) of the sample's first image file (rgb first), None without one."""
    from .formats import scan_modality

    folders = _image_folders((p.name for p in root.iterdir() if p.is_dir()), modality)
    files = [scan_modality(root / f) for f in folders]
    return lambda key: next((_size_of_file(f[key]) for f in files if key in f), None)


def _pretokenize_shards(root: Path, modality: str, out_name: str, encoder: _BatchEncoder, n_crops: int, seed: int,
                        progress: bool) -> PretokenizeReport:
    """Shard i of ``tok_<modality>`` (and of ``crop_settings``) holds the tokens of shard i's samples under the
    same keys, so the token modality streams and merges like any other; index.json lists it afterwards."""
    from tqdm.auto import tqdm

    from ..atomic import write_atomic
    from .codecs import decode
    from .formats import INDEX_FILE, read_index, shard_name

    index = read_index(root)
    if modality not in index.get("modalities", []):
        raise DataError(f"{root}: the shards hold no {modality!r} (modalities: {index.get('modalities')})")
    out_dir = root / out_name
    report = PretokenizeReport(0, 0, out_dir)
    for shard in tqdm(range(int(index["num_shards"])), desc=f"tokenize {modality} shards", disable=not progress):
        target = out_dir / shard_name(shard)
        if target.exists():
            report.skipped += 1
            continue
        crop_path = root / CROP_DIR / shard_name(shard)
        stored = {k: _check_crops(np.load(io.BytesIO(v), allow_pickle=False), n_crops, f"{crop_path}:{k}")
                  for k, v in _read_tar(crop_path, strict=True).items()}
        grew = False
        tokens: dict[str, bytes] = {}

        def crops_for(key: str, h: int, w: int) -> np.ndarray:
            nonlocal grew
            if key not in stored:
                stored[key] = sample_crops(h, w, n_crops, _key_rng(key, seed))
                grew = True
            return stored[key]

        def sink(key: str, rows: np.ndarray) -> None:
            tokens[key] = _npy_bytes(rows)

        sizes = _shard_sizes(root, index["modalities"], modality, shard) if encoder.needs_size else {}
        source = root / modality / shard_name(shard)
        damaged = len(report.corrupt)
        members = _read_tar(source, with_ext=True, corrupt=report.corrupt)
        if len(report.corrupt) > damaged:  # the shard file itself is damaged: no token shard, so a rerun redoes it
            continue
        for key, (data, ext) in members.items():
            try:
                value = decode(data, ext, modality)
            except ValueError as err:  # one damaged sample: skipped and counted, the shard goes on
                report.corrupt.append(f"{source}:{key}{ext} ({err})")
                logger.warning("skipping corrupt %s of %s in %s (%s)", modality, key, source, err)
                continue
            encoder.add(key, value, crops_for, sink, sizes.get(key))
        encoder.flush(sink)
        if grew:
            write_atomic(crop_path, _tar_bytes({k: _npy_bytes(v) for k, v in stored.items()}))
        write_atomic(target, _tar_bytes(tokens))
        report.written += 1
    if out_name not in index["modalities"]:
        index["modalities"].append(out_name)
        write_atomic(root / INDEX_FILE, json.dumps(index, indent=1).encode())
    return report


def _shard_sizes(root: Path, names: list, modality: str, shard: int) -> dict[str, tuple[int, int]]:
    """key -> (height, width) of shard ``shard``'s samples, from the first image modality the shards hold."""
    from PIL import Image, UnidentifiedImageError

    from .formats import shard_name

    for name in _image_folders(names, modality):
        files = _read_tar(root / name / shard_name(shard), with_ext=True)
        if not files:
            continue
        sizes = {}
        for key, (data, ext) in files.items():
            if ext == ".npy":
                sizes[key] = tuple(np.load(io.BytesIO(data), allow_pickle=False).shape[:2])
            else:
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        sizes[key] = (im.height, im.width)
                except (UnidentifiedImageError, OSError) as err:  # no size for this sample; see _size_of_file
                    logger.warning("cannot read the size of %s in %s (%s)", key, name, err)
        return sizes
    return {}


def _check_crops(crops: np.ndarray, n_crops: int, where: str) -> np.ndarray:
    if crops.ndim != 2 or crops.shape[1] != 5 or len(crops) < n_crops:
        raise DataError(f"{where} holds {crops.shape} crop settings; need ({n_crops}, 5) — delete it to redo crops")
    return crops[:n_crops]


def _read_tar(path: Path, with_ext: bool = False, corrupt: list[str] | None = None, strict: bool = False) -> dict:
    """key -> bytes (or (bytes, '.ext')) of a tar shard, in key order; {} when the file does not exist.

    A damaged tar (empty, truncated, not a tar) is an error naming it when `strict` (files we wrote and
    read back); otherwise it yields the members read before the damage, and is listed in `corrupt`.
    """
    if not path.exists():
        return {}
    out = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    key, _, ext = member.name.partition(".")
                    data = tar.extractfile(member).read()
                    out[key] = (data, "." + ext) if with_ext else data
    except (tarfile.TarError, EOFError, OSError) as err:
        why = "empty file" if path.is_file() and not path.stat().st_size else \
            (str(err).splitlines() or [""])[0].rstrip(":") or "truncated"
        if strict or corrupt is None:
            raise DataError(f"{path} is not a readable tar shard ({why}); delete it to have it written again, or "
                            "restore it") from None
        corrupt.append(f"{path} ({why}; {len(out)} samples read before it)")
        logger.warning("skipping the unreadable rest of %s (%s)", path, why)
    return dict(sorted(out.items()))


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    """Sorted ``<key>.npy`` members, the webdataset convention."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key in sorted(files):
            info = tarfile.TarInfo(f"{key}.npy")
            info.size = len(files[key])
            tar.addfile(info, io.BytesIO(files[key]))
    return buf.getvalue()


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
