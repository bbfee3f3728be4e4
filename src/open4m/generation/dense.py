"""Dense SAM instances: many prompted passes for one image, merged into one instance map.

A `sam_instance` sequence describes the instances around a few query points the model chooses
itself, so one pass sees only part of the image. The 4M-21 demo runs the same input many times in
one batch (each row samples its own points and instances) and merges everything; this does the
same with the sampler's batching.

Two ways to merge, largest box first:
- `merge_sam_instances` (no mask tokenizer needed): an instance whose box overlaps a kept one by
  IoU above 0.9 is dropped;
- `sam_instance_map` (with the SAM mask tokenizer): every instance's 16 codes are decoded to a
  64x64 mask; masks that are not confidently on and off somewhere are dropped; an instance joins a
  group when both its box IoU (> 0.9) and its mask Dice (> 0.8) with the group's first member are
  high; each group's masks and boxes are averaged, the mask is resized into its box (bicubic) and
  thresholded at 0.5, and the groups are painted largest first into one (H, W) map of instance
  ids. These are the official demo's rules; unlike it, a sample without instances does not end
  the batch, and the map is returned as ids (`colorize_instances` makes the picture).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ConfigError, DataError
from ..tokenizers.sequences import SamInstance, SamInstanceCodec
from .sampler import Condition, Sampler
from .schedules import GenerationSchedule, ScheduleStep


def _repeat(value: Condition, n: int) -> Condition:
    if isinstance(value, Mapping):
        return {k: _repeat(v, n) for k, v in value.items()}
    if value.shape[0] != 1:
        raise DataError(f"dense generation repeats ONE sample; got a batch of {value.shape[0]} (loop over them)")
    return value.expand(n, *value.shape[1:]).clone()


def generate_dense(sampler: Sampler, conditions: Mapping[str, Condition], step: ScheduleStep, *, repeats: int = 32,
                   generator: torch.Generator | None = None) -> list[list[int]]:
    """Generate an autoregressive target `repeats` times for one sample (rows in parallel); tokens per row."""
    if step.scheme != "autoregressive":
        raise ConfigError(f"dense generation samples sequences; {step.target!r} is decoded with {step.scheme!r}")
    if repeats < 1:
        raise ConfigError(f"repeats={repeats}: run at least one pass")
    batch = {name: _repeat(value, repeats) for name, value in conditions.items()}
    out = sampler.generate(batch, GenerationSchedule(tuple(conditions), (step,)), generator=generator)[step.target]
    return [t[~m].tolist() for t, m in zip(out["tensor"], out["input_mask"])]


def _area(box: Sequence[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def sam_instances(texts: Sequence[str], codec: SamInstanceCodec = SamInstanceCodec()) -> list[SamInstance]:
    """Every instance of every well-formed pass, largest box first.

    Passes that do not parse (sampling can produce malformed sequences) and instances with empty
    boxes are skipped, as the official decoder skips malformed polygons.
    """
    found: list[SamInstance] = []
    for text in texts:
        try:
            queries = codec.from_text(text)
        except ValueError:
            continue
        found += [inst for q in queries for inst in q.instances if _area(inst.box) > 0]
    return sorted(found, key=lambda i: -_area(i.box))


def merge_sam_instances(texts: Sequence[str], iou_threshold: float = 0.9,
                        codec: SamInstanceCodec = SamInstanceCodec()) -> list[SamInstance]:
    """Instances of every well-formed pass, largest first, without near-duplicate boxes."""
    kept: list[SamInstance] = []
    for inst in sam_instances(texts, codec):
        if all(box_iou(inst.box, k.box) <= iou_threshold for k in kept):
            kept.append(inst)
    return kept


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    """Soft Dice of two probability masks (smoothed as the official demo does)."""
    return float(2 * ((a * b).sum() + 0.01) / (a.sum() + b.sum() + 0.01))


@torch.no_grad()
def sam_instance_map(texts_or_instances: Sequence[str] | Sequence[SamInstance], mask_tokenizer: Any,
                     image_size: int = 224, *, iou_threshold: float = 0.9, dice_threshold: float = 0.8,
                     min_contrast: float = 0.9) -> np.ndarray:
    """One (H, W) int32 map of instance ids (0 = none, 1.. = instances painted largest first).

    `texts_or_instances` are the generated `sam_instance` texts of one image (all its dense passes)
    or already parsed instances; `mask_tokenizer` decodes (N, 16) codes to (N, 1, 64, 64) mask
    logits (the 4M-21 SAM instance tokenizer, or any VQ tokenizer of that shape).
    """
    found = sam_instances(texts_or_instances) if texts_or_instances and isinstance(texts_or_instances[0], str) \
        else sorted(texts_or_instances, key=lambda i: -_area(i.box))
    ids = np.zeros((image_size, image_size), dtype=np.int32)
    if not found:
        return ids
    lengths = {len(inst.codes) for inst in found}
    if len(lengths) != 1:
        raise DataError(f"instances carry different numbers of mask codes {sorted(lengths)}; one mask tokenizer "
                         "decodes one grid size")
    codes = torch.tensor([inst.codes for inst in found], dtype=torch.long)
    if int(codes.max()) >= mask_tokenizer.vocab_size:
        raise CheckpointError(f"mask code {int(codes.max())} is outside the mask tokenizer's {mask_tokenizer.vocab_size} "
                         "codes; give the SAM instance tokenizer the model was trained with")
    masks = torch.sigmoid(mask_tokenizer.decode(codes).float())[:, 0]
    groups: list[list[int]] = []
    for i, mask in enumerate(masks):
        if float(mask.max() - mask.min()) < min_contrast:
            continue
        for group in groups:
            first = group[0]
            if box_iou(found[first].box, found[i].box) > iou_threshold and _dice(masks[first], mask) > dice_threshold:
                group.append(i)
                break
        else:
            groups.append([i])
    for label, group in enumerate(groups, start=1):
        x0, y0, x1, y1 = np.mean([found[i].box for i in group], axis=0).astype(int).tolist()
        x1, y1 = min(x1, image_size), min(y1, image_size)
        if x1 <= x0 or y1 <= y0:
            continue
        mean_mask = masks[group].mean(dim=0)[None, None]
        inside = F.interpolate(mean_mask, size=(y1 - y0, x1 - x0), mode="bicubic", align_corners=False)[0, 0] > 0.5
        ids[y0:y1, x0:x1][inside.numpy()] = label
    return ids


def colorize_instances(ids: np.ndarray, seed: int = 0):
    """An instance-id map as a PIL image: black background, one fixed random colour per id."""
    from PIL import Image

    palette = np.random.default_rng(seed).integers(0, 256, size=(int(ids.max()) + 1, 3), dtype=np.uint8)
    palette[0] = 0
    return Image.fromarray(palette[ids])


__all__ = ["generate_dense", "sam_instances", "merge_sam_instances", "sam_instance_map", "colorize_instances", "box_iou"]
