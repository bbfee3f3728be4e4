"""Default decoding settings per target modality, as the official 4M demo sampler chose them.

Two tables, chosen by the conditions: with RGB among them (pixels or tokens) the other modalities
are read off the image, so they decode in one near-greedy ROAR step; without RGB, image-like
targets are generated and get many hot steps with a temperature that cools (``onex:0.5:0.5``).
Super-resolution targets (``@448``) use MaskGIT, 8 cosine steps. Every target samples with
nucleus filtering ``top_p=0.8`` and finished targets join the guidance conditions of later ones,
as in the demo. Targets the demo does not know (custom modalities) get no entry here and fall back
to :func:`open4m.generation.schedules.build_schedule`'s own defaults.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["demo_settings", "DEMO_TOP_P", "DEMO_GROW_CONDITIONING", "DEMO_DECODE_STEPS"]

DEMO_TOP_P = 0.8
DEMO_GROW_CONDITIONING = True
DEMO_DECODE_STEPS = 50  # diffusion steps the demo gives the DiVAE tokenizers when rendering

_COOLING = "onex:0.5:0.5"


def _roar(steps: int, temp: float, cfg: float, temp_schedule: str = "constant") -> dict[str, Any]:
    return dict(schemes="roar", steps=steps, token_schedules="linear", temps=temp, temp_schedules=temp_schedule, cfg=cfg)


def _sequence(temp: float) -> dict[str, Any]:
    return dict(schemes="autoregressive", temps=temp, cfg=1.0)


def _expand(table: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: settings for names, settings in table.items() for name in names.split("/")}


_SEQUENCES = {"caption/det": _sequence(0.3), "human_poses": _sequence(0.1), "sam_instance": _sequence(0.01),
              "color_palette": _sequence(0.1), "metadata": _sequence(0.1)}

_FROM_RGB = _expand({
    "tok_clip@224/tok_depth@224/tok_normal@224/tok_semseg@224/tok_canny_edge@224/tok_sam_edge@224": _roar(1, 0.01, 2.0),
    "tok_dinov2@224/tok_imagebind@224": _roar(1, 0.01, 2.0),
    **_SEQUENCES,
})

_TO_RGB = _expand({
    "tok_clip@224": _roar(50, 5.0, 3.0, _COOLING),
    "tok_dinov2@224/tok_imagebind@224": _roar(8, 0.01, 2.0),
    "tok_depth@224/tok_normal@224/tok_semseg@224/tok_canny_edge@224/tok_sam_edge@224": _roar(8, 3.0, 2.0, _COOLING),
    "tok_rgb@224": _roar(25, 3.0, 2.0, _COOLING),
    **_SEQUENCES,
})

_SUPER_RESOLUTION = _expand({
    "tok_clip@448/tok_depth@448/tok_normal@448/tok_semseg@448/tok_rgb@448":
        dict(schemes="maskgit", steps=8, token_schedules="cosine", temps=1.0, temp_schedules="constant", cfg=2.0),
})


def demo_settings(conditions: Sequence[str], target: str) -> dict[str, Any] | None:
    """The demo's settings for ``target`` given ``conditions`` (build_schedule option names), or None."""
    if target in _SUPER_RESOLUTION:
        return dict(_SUPER_RESOLUTION[target])
    table = _FROM_RGB if {"rgb@224", "tok_rgb@224"} & set(conditions) else _TO_RGB
    found = table.get(target)
    return dict(found) if found is not None else None
