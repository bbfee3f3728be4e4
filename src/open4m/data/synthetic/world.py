"""The procedural world in model form: modality names, registry entries, conversions, rendering.

A *world model* works at a small resolution (a 2-core CPU trains one in under two hours), so its
image-token modalities get their own registry entries (`tok_depth@64`, ...) with their own token
grid and vocabulary, and its sequence modalities (`world_caption`, ...) get a vocabulary sized
to the world's text tokenizer instead of the official 30k WordPiece one: the embedding tables are
what would otherwise dominate the weights.

Depth is tokenized in metres through a fixed affine map (not the official per-image
standardisation), so the model predicts metric depth that abs-rel/RMSE can score directly.

Rendering many scenes into memory (:func:`render_world`), encoding them with a tokenizer
(:func:`encode_images`) and assembling model-form samples (:func:`token_samples`) serve both the
world source (`open4m.sources.world`) and the world recipe (`open4m.recipes.world`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ... import modalities
from ...errors import ConfigError, DataError
from ...modalities import Kind, Modality
from .captions import check_caption_order

# Image modalities of the procedural world that get a VQ tokenizer, in display order.
IMAGE_MODALITIES: tuple[str, ...] = ("rgb", "depth", "normal", "semseg", "canny_edge")
# Sequence modalities: world key -> model modality base name.
SEQUENCE_MODALITIES: dict[str, str] = {
    "caption": "world_caption", "det": "world_det", "color_palette": "world_palette", "metadata": "world_metadata",
}
# Longest token sequence (with [EOS] and a sentinel) of each sequence modality.
SEQUENCE_MAX_TOKENS: dict[str, int] = {"caption": 176, "det": 96, "color_palette": 23, "metadata": 48}
PALETTE_SIZE = 4  # the palette the model predicts: the world's 4-colour k-means palette
DEPTH_CENTER, DEPTH_SCALE = 6.0, 3.0  # metres -> model form (d - center) / scale; 0 means "no surface"
# Metadata fields the model predicts (the rest are constants of the world or caption statistics).
METADATA_KEYS: tuple[str, ...] = ("colorfulness", "brightness", "contrast", "saturation", "entropy",
                                  "n_coco_instances", "coco_instance_diversity", "walkability", "objectness",
                                  "semantic_diversity", "occlusion_score")


_TAG = " (demo world model)"


@dataclass(frozen=True)
class WorldSpec:
    """Resolution and vocabularies: everything that fixes the model's modality registry entries."""

    image_size: int
    patch_size: int
    codebook_sizes: Mapping[str, int]
    text_vocab_size: int
    #: pixels per side of the RGB input's patches (None: patch_size); finer than the token grids' when the recipe
    #: asks, so the encoder sees more tokens per object
    rgb_patch_size: int | None = None
    #: how captions list their objects (`open4m.data.synthetic.CAPTION_ORDERS`): the model reads and writes
    #: captions in this order, so its scenes are rendered with it everywhere (training, eval, demo)
    caption_order: str = "random"
    #: what a caption -> RGB generation draws first, in order (world keys: `det`, `semseg`, ...), each from the
    #: caption and all drawn before it (chained generation): the route its trainers found draws the scene a
    #: caption describes best; empty: RGB straight from the caption
    caption_rgb_chain: tuple[str, ...] = ()
    #: pixels per token side of the image modalities whose token grid is finer (or coarser) than patch_size's,
    #: e.g. {"rgb": 4}: a generated image is a grid of its tokenizer's tokens, so RGB is the grid worth refining
    token_patch_sizes: Mapping[str, int] = field(default_factory=dict)
    #: classifier-free guidance weights of the conditions RGB is drawn from in caption -> RGB (world keys:
    #: `caption` and the chain's), {} for none: RGB drawn as uncond + sum_k w_k (cond_k - uncond), one pass per
    #: condition, so a weight above 1 makes the picture follow that condition more (the boxes' shapes) and one
    #: below 1 less; a condition without a weight counts 1
    caption_rgb_guidance: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rgb_patch_size is None:
            object.__setattr__(self, "rgb_patch_size", self.patch_size)
        check_caption_order(self.caption_order)
        object.__setattr__(self, "caption_rgb_chain", check_caption_rgb_chain(self.caption_rgb_chain))
        object.__setattr__(self, "caption_rgb_guidance",
                           check_caption_rgb_guidance(self.caption_rgb_guidance, self.caption_rgb_chain))
        patches = check_token_patch_sizes(self.token_patch_sizes, self.image_size, "token_patch_sizes")
        object.__setattr__(self, "token_patch_sizes", {b: p for b, p in patches.items() if p != self.patch_size})

    def token_patch(self, base: str) -> int:
        """Pixels per token side of image modality `base`'s token grid."""
        return token_patch(self.token_patch_sizes, self.patch_size, base)

    @property
    def rgb_pixels(self) -> str:
        return f"rgb@{self.image_size}"

    def tok(self, base: str) -> str:
        """Token modality name of an image modality (`depth` -> `tok_depth@64`)."""
        return f"tok_{base}@{self.image_size}"

    @property
    def token_modalities(self) -> list[str]:
        return [self.tok(m) for m in IMAGE_MODALITIES]

    @property
    def sequence_modalities(self) -> list[str]:
        return list(SEQUENCE_MODALITIES.values())

    @property
    def all_modalities(self) -> list[str]:
        return [self.rgb_pixels, *self.token_modalities, *self.sequence_modalities]

    def to_dict(self) -> dict[str, Any]:
        d = {"image_size": self.image_size, "patch_size": self.patch_size, "rgb_patch_size": self.rgb_patch_size,
             "codebook_sizes": dict(self.codebook_sizes), "text_vocab_size": self.text_vocab_size,
             "caption_order": self.caption_order}
        if self.caption_rgb_chain:  # absent when empty: bundles written before it read the same
            d["caption_rgb_chain"] = list(self.caption_rgb_chain)
        if self.token_patch_sizes:  # likewise
            d["token_patch_sizes"] = dict(self.token_patch_sizes)
        if self.caption_rgb_guidance:  # likewise
            d["caption_rgb_guidance"] = dict(self.caption_rgb_guidance)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WorldSpec":
        rgb_patch = d.get("rgb_patch_size")  # absent in bundles made before it existed: the token grids' patch
        return cls(int(d["image_size"]), int(d["patch_size"]), dict(d["codebook_sizes"]), int(d["text_vocab_size"]),
                   int(rgb_patch) if rgb_patch else None, str(d.get("caption_order", "random")),
                   tuple(d.get("caption_rgb_chain") or ()), dict(d.get("token_patch_sizes") or {}),
                   dict(d.get("caption_rgb_guidance") or {}))


def token_patch(token_patch_sizes: Mapping[str, int], patch_size: int, base: str) -> int:
    """Pixels per token side of image modality `base`'s grid: its own size where `token_patch_sizes` names one, else
    the world's `patch_size` (what a spec and a recipe's world section both answer)."""
    return int(token_patch_sizes.get(base, patch_size))


def check_token_patch_sizes(patches: Any, image_size: int, key: str) -> dict[str, int]:
    """`patches` (image modality -> pixels per token side) as a dict, refused (a `ConfigError` naming the fix) if
    it names anything but the world's image modalities or a size that does not divide `image_size`."""
    if not isinstance(patches, Mapping):
        raise ConfigError(f"{key}={patches!r}: give a mapping of image modality to pixels per token side, e.g. {{rgb: 4}}")
    bad = [k for k in patches if k not in IMAGE_MODALITIES]
    if bad:
        raise ConfigError(f"{key}: {', '.join(map(repr, bad))} is not an image modality of the world; choose from "
                          f"{', '.join(IMAGE_MODALITIES)}")
    uneven = {k: v for k, v in patches.items()
              if isinstance(v, bool) or not isinstance(v, int) or v < 1 or image_size % v}
    if uneven:
        raise ConfigError(f"{key}: {uneven} must divide the image size {image_size} (e.g. 4 or 8 for 64 px)")
    return {str(k): int(v) for k, v in patches.items()}


#: what a caption -> RGB chain may draw on the way: every world modality but the two ends
CHAIN_KEYS: tuple[str, ...] = (*(b for b in IMAGE_MODALITIES if b != "rgb"),
                               *(k for k in SEQUENCE_MODALITIES if k != "caption"))


def check_caption_rgb_chain(chain: Sequence[str]) -> tuple[str, ...]:
    """`chain` as a tuple, refused (a `ConfigError` naming the keys allowed) if it names anything but the world's
    modalities between a caption and RGB, or one of them twice."""
    if isinstance(chain, str) or not all(isinstance(k, str) for k in chain):
        raise ConfigError(f"caption_rgb_chain={chain!r}: give a list of world keys, e.g. [det, semseg]")
    bad = [k for k in chain if k not in CHAIN_KEYS]
    if bad or len(set(chain)) < len(chain):
        raise ConfigError(f"caption_rgb_chain={list(chain)!r}: " + (f"{', '.join(map(repr, bad))} cannot be drawn on the "
                          f"way from a caption to RGB" if bad else "a key is named twice")
                          + f"; choose each at most once from {', '.join(CHAIN_KEYS)}")
    return tuple(chain)


def check_caption_rgb_guidance(weights: Any, chain: Sequence[str]) -> dict[str, float]:
    """`weights` (world key -> guidance weight) as a dict, refused (a `ConfigError` naming the fix) unless each key
    is a condition caption -> RGB draws from (`caption` or a key of `chain`) and each weight a number >= 0."""
    if not isinstance(weights, Mapping):
        raise ConfigError(f"caption_rgb_guidance={weights!r}: give a mapping of condition to guidance weight, e.g. "
                          f"{{det: 2.0, caption: 0.5}}")
    allowed = ("caption", *chain)
    bad = [k for k in weights if k not in allowed]
    if bad:
        raise ConfigError(f"caption_rgb_guidance: {', '.join(map(repr, bad))} is no condition of caption -> RGB; "
                          f"weight one of {', '.join(allowed)} (a key drawn on the way is listed in "
                          f"caption_rgb_chain first)")
    wrong = {k: w for k, w in weights.items()
             if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0}
    if wrong:
        raise ConfigError(f"caption_rgb_guidance: {wrong} must be numbers >= 0 (1: no guidance on that condition)")
    return {str(k): float(w) for k, w in weights.items()}


def read_world_json(folder: str | os.PathLike) -> tuple[dict[str, Any], WorldSpec]:
    """A world model folder's ``world.json`` (its spec, recipe, timings) and the spec in it; a damaged file is a
    one-line `DataError` naming it (the fix: restore the file, or save the model again)."""
    path = Path(folder) / "world.json"
    fix = "restore it from the model's release, or save the model again (open4m demo --train)"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as err:
        raise DataError(f"{path} is not readable JSON ({err}); {fix}") from None
    try:
        return meta, WorldSpec.from_dict(meta["spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path} holds no valid world spec ({type(err).__name__}: {err}); {fix}") from None


def register_modalities(spec: WorldSpec) -> list[str]:
    """Add the world model's modalities to the registry (idempotent); returns their names."""
    s = spec.image_size
    entries = [Modality(spec.rgb_pixels, Kind.PIXELS, image_size=s, patch_size=spec.rgb_patch_size, num_channels=3,
                        encoder=True, path="rgb", description=f"RGB pixels at {s}px" + _TAG, pixel_mean=(0.5,) * 3,
                        pixel_std=(0.5,) * 3)]  # to_model_form("rgb") maps pixels to [-1, 1]
    for base in IMAGE_MODALITIES:
        entries.append(Modality(spec.tok(base), Kind.IMAGE_TOKENS, vocab_size=int(spec.codebook_sizes[base]),
                                image_size=s, patch_size=spec.token_patch(base), encoder=True, decoder=True,
                                path=f"tok_{base}", tokenizer=base, description=f"{base} VQ tokens at {s}px" + _TAG))
    for key, name in SEQUENCE_MODALITIES.items():
        entries.append(Modality(name, Kind.SEQUENCE, vocab_size=spec.text_vocab_size,
                                max_tokens=SEQUENCE_MAX_TOKENS[key], encoder=True, decoder=True, path=name,
                                tokenizer="text", description=f"{key} as text" + _TAG))
    for m in entries:
        try:
            existing = modalities.get(m.name)
        except KeyError:
            existing = None
        # another world model (other vocabulary) may have registered the name in this process: replace it;
        # a user's or an official entry under the same name is never replaced
        ours = existing is not None and existing.description.endswith(_TAG)
        modalities.register(m, overwrite=ours)
    return [m.name for m in entries]


# -- image modalities: world arrays <-> tokenizer model form -------------------------------------
def to_model_form(base: str, value: np.ndarray) -> torch.Tensor:
    """One world array (H, W[, C]) -> the tokenizer's input for one sample (C, H, W) float or (H, W) long."""
    if base == "semseg":
        return torch.from_numpy(value.astype(np.int64))
    if base == "rgb":
        t = torch.from_numpy(value).permute(2, 0, 1).float() / 127.5 - 1.0
    elif base == "depth":
        d = value.astype(np.float32)
        t = torch.from_numpy(np.where(d > 0, (d - DEPTH_CENTER) / DEPTH_SCALE, -DEPTH_CENTER / DEPTH_SCALE))[None]
    elif base == "normal":
        t = torch.from_numpy(value.astype(np.float32)).permute(2, 0, 1)
    elif base == "canny_edge":
        t = torch.from_numpy(value.astype(np.float32))[None] / 127.5 - 1.0
    else:
        raise ConfigError(f"{base!r} is not an image modality of the world; choose one of {IMAGE_MODALITIES}")
    return t.float().contiguous()


def from_model_form(base: str, decoded: torch.Tensor) -> np.ndarray:
    """A tokenizer's decoded batch -> world arrays: uint8 RGB/edges, metres, unit normals, class ids."""
    y = decoded.detach().float().cpu()
    if base == "semseg":
        return y.argmax(1).numpy().astype(np.uint8)
    if base == "rgb":
        return ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if base == "depth":
        return np.clip(y[:, 0].numpy() * DEPTH_SCALE + DEPTH_CENTER, 0.05, None)
    if base == "normal":
        n = y.permute(0, 2, 3, 1).numpy()
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    if base == "canny_edge":
        return np.where(y[:, 0].numpy() > 0, 255, 0).astype(np.uint8)
    raise ConfigError(f"{base!r} is not an image modality of the world; choose one of {IMAGE_MODALITIES}")


# -- sequence modalities: world annotations <-> text ---------------------------------------------
def palette_of(sample: Mapping[str, Any]) -> list[list[int]]:
    """The world sample's PALETTE_SIZE-colour palette."""
    return [list(c) for c in sample["color_palette"][0][str(PALETTE_SIZE)]]


def sequence_text(key: str, sample: Mapping[str, Any]) -> str:
    """The text the model reads/writes for one sequence modality of a world sample."""
    from ...tokenizers.sequences import CODECS
    from ..loader import codec_input

    if key == "caption":
        return sample["caption"]
    if key == "det":
        return CODECS["det"].to_text(codec_input("det", sample["det"], None))
    if key == "color_palette":
        return CODECS["color_palette"].to_text(palette_of(sample))
    if key == "metadata":
        return CODECS["metadata"].to_text({k: float(sample["metadata"][k]) for k in METADATA_KEYS})
    raise ConfigError(f"{key!r} is not a sequence modality of the world; choose one of {list(SEQUENCE_MODALITIES)}")


def parse_text(key: str, text: str) -> Any:
    """Generated text -> structured value (boxes, palette, metadata dict, or the caption itself).

    Malformed generations raise ValueError; callers score them as misses.
    """
    from ...tokenizers.sequences import CODECS

    if key == "caption":
        return text
    return CODECS[key].read_generated(text)


# -- many scenes in model form ------------------------------------------------------------------
@dataclass
class WorldData:
    """Rendered scenes in memory: stacked image arrays and per-sample sequence texts."""

    names: list[str]
    images: dict[str, np.ndarray]  # base -> (N, H, W[, C])
    texts: dict[str, list[str]]  # world key -> N strings


def _render(job: tuple[int, int, str]) -> dict[str, Any]:
    """One scene's image arrays and sequence texts (top level, so worker processes can run it)."""
    from . import generate_sample, sample_name

    seed, size, caption_order = job
    s = generate_sample(seed, size, caption_order=caption_order)
    return {"name": sample_name(seed), **{b: s[b] for b in IMAGE_MODALITIES},
            **{k: sequence_text(k, s) for k in SEQUENCE_MODALITIES}}


def render_world(split: str, n: int, size: int, workers: int = 1, start: int = 0, progress: bool = True,
                 caption_order: str = "random") -> WorldData:
    """Render scenes `start .. start+n-1` of a split (the same seeds give the same scenes everywhere), their
    captions listing objects in `caption_order`."""
    from multiprocessing import get_context

    from tqdm import tqdm

    from . import seed_for

    check_caption_order(caption_order)
    jobs = [(seed_for(split, i), size, caption_order) for i in range(start, start + n)]
    bar = dict(total=n, desc=f"render {split} scenes", unit="scene", disable=not progress)
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            rows = list(tqdm(pool.imap(_render, jobs, chunksize=16), **bar))
    else:
        rows = [_render(j) for j in tqdm(jobs, **bar)]
    return WorldData([r["name"] for r in rows], {b: np.stack([r[b] for r in rows]) for b in IMAGE_MODALITIES},
                     {k: [r[k] for r in rows] for k in SEQUENCE_MODALITIES})


@torch.no_grad()
def encode_images(tokenizer: Any, base: str, arrays: np.ndarray, batch: int = 128) -> np.ndarray:
    """World arrays -> (N, tokens) int64 token ids through an image tokenizer's `encode`."""
    out = []
    for i in range(0, len(arrays), batch):
        x = torch.stack([to_model_form(base, a) for a in arrays[i:i + batch]])
        out.append(tokenizer.encode(x).reshape(len(x), -1).numpy())
    return np.concatenate(out).astype(np.int64)


def token_samples(spec: WorldSpec, data: WorldData, tokens: Mapping[str, np.ndarray],
                  text_tok: Any) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """(scene name, {modality: array}) per scene: every model modality in the form `open4m train` reads."""
    for i, name in enumerate(data.names):
        sample = {spec.rgb_pixels: to_model_form("rgb", data.images["rgb"][i]).numpy()}
        for base in IMAGE_MODALITIES:
            sample[spec.tok(base)] = tokens[base][i]
        sample.update(sequence_ids(data, i, text_tok))
        yield name, sample


def sequence_ids(data: WorldData, i: int, text_tok: Any) -> dict[str, np.ndarray]:
    """Scene `i`'s sequence modalities as the token ids the model trains on."""
    out = {}
    for key, mod in SEQUENCE_MODALITIES.items():
        ids = text_tok.encode(data.texts[key][i]).numpy().astype(np.int64)
        out[mod] = ids[:SEQUENCE_MAX_TOKENS[key] - 2]  # room for [EOS] and a sentinel
    return out
