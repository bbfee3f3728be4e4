"""Dense SAM instances: many prompted passes for one image, merged into one instance set.

A `sam_instance` sequence describes the instances around a few query points the model chooses
itself, so one pass sees only part of the image. The 4M-21 demo runs the same input many times in
one batch (each row samples its own points and instances) and merges everything; this does the
same with the sampler's batching. Duplicates are merged on the token level by box overlap (the
official demo also compares decoded masks, which needs the SAM mask tokenizer): instances are
ordered largest box first, and one whose box overlaps a kept one by IoU above the threshold is
dropped, so painting them in order gives one instance map.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..tokenizers.sequences import SamInstance, SamInstanceCodec
from .sampler import Condition, Sampler
from .schedules import GenerationSchedule, ScheduleStep


def _repeat(value: Condition, n: int) -> Condition:
    if isinstance(value, Mapping):
        return {k: _repeat(v, n) for k, v in value.items()}
    if value.shape[0] != 1:
        raise ValueError(f"dense generation repeats ONE sample; got a batch of {value.shape[0]} (loop over them)")
    return value.expand(n, *value.shape[1:]).clone()


def generate_dense(sampler: Sampler, conditions: Mapping[str, Condition], step: ScheduleStep, *, repeats: int = 32,
                   generator: torch.Generator | None = None) -> list[list[int]]:
    """Generate an autoregressive target `repeats` times for one sample (rows in parallel); tokens per row."""
    if step.scheme != "autoregressive":
        raise ValueError(f"dense generation samples sequences; {step.target!r} is decoded with {step.scheme!r}")
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: run at least one pass")
    batch = {name: _repeat(value, repeats) for name, value in conditions.items()}
    out = sampler.generate(batch, GenerationSchedule(tuple(conditions), (step,)), generator=generator)[step.target]
    return [t[~m].tolist() for t, m in zip(out["tensor"], out["input_mask"])]


def _area(box: Sequence[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def box_iou(a: Sequence[int], b: Sequence[int]) -> float:
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def merge_sam_instances(texts: Sequence[str], iou_threshold: float = 0.9,
                        codec: SamInstanceCodec = SamInstanceCodec()) -> list[SamInstance]:
    """Instances of every well-formed pass, largest first, without near-duplicate boxes.

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
    kept: list[SamInstance] = []
    for inst in sorted(found, key=lambda i: -_area(i.box)):
        if all(box_iou(inst.box, k.box) <= iou_threshold for k in kept):
            kept.append(inst)
    return kept


__all__ = ["generate_dense", "merge_sam_instances", "box_iou"]
