"""Alpha mixtures: how a sample's input and target token budgets are shared among modalities.

A mixture is a weighted set of named Dirichlet configurations (components such as "rgb-to-all"
and "all-to-all"); one component is drawn per sample and its per-modality alphas split the
budgets (:mod:`.budgets`). Here too: the official recipes (`FOURM_7_MIXTURE`,
`FOURM_7_CAPBIAS_MIXTURE`, `FOURM_21_MIXTURE`, keyed in `OFFICIAL_MIXTURES`), the reader of the
official `alphas_mixture` YAML files, and `rgb_to_all_mixture` for any modality set.

Deviation from the official configs, deliberate: a modality missing from a component's alphas has
alpha 0, and 0 means *never* (see :mod:`.budgets`), not "alpha 1e-9".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ... import modalities
from ...errors import ConfigError
from ...modalities import Kind
from .spans import KEEP_SCHEMES


@dataclass(frozen=True)
class AlphaComponent:
    """One Dirichlet configuration of a mixture: per-modality input/target alphas and keep schemes.

    A modality missing from `input_alphas` / `target_alphas` has alpha 0 (never chosen). `keep`
    says how much of a sequence tends to stay visible when it is an input: `random` (keep
    probability ~ U(0, 1)), `all` (whole sequence, e.g. caption-biased text-to-image) or `binary`.
    """

    name: str
    input_alphas: Mapping[str, float]
    target_alphas: Mapping[str, float]
    keep: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, alphas in (("input", self.input_alphas), ("target", self.target_alphas)):
            for mod, a in alphas.items():
                if not a >= 0:
                    raise ConfigError(f"component {self.name!r}: {label} alpha of {mod!r} is {a}; alphas must be >= 0")
        for mod, scheme in self.keep.items():
            if scheme not in KEEP_SCHEMES:
                raise ConfigError(f"component {self.name!r}: keep scheme {scheme!r} of {mod!r} is unknown; use one of "
                                  f"{KEEP_SCHEMES}")

    def keep_scheme(self, mod: str) -> str:
        return self.keep.get(mod, "random")


@dataclass(frozen=True)
class AlphaMixture:
    """A weighted mixture of :class:`AlphaComponent`; one component is drawn per sample."""

    components: tuple[AlphaComponent, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))
        if not self.components:
            raise ConfigError("an alpha mixture needs at least one component; give one (e.g. AlphaMixture.single(...))")
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
            if len(self.weights) != len(self.components):
                raise ConfigError(f"{len(self.weights)} sampling weights for {len(self.components)} components; give one each")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ConfigError(f"sampling weights {self.weights} are invalid; give weights >= 0 with a positive sum")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality any component mentions, in first-mention order."""
        seen: dict[str, None] = {}
        for c in self.components:
            for mod in (*c.input_alphas, *c.target_alphas):
                seen.setdefault(mod)
        return tuple(seen)

    @property
    def probabilities(self) -> np.ndarray:
        w = np.ones(len(self.components)) if self.weights is None else np.asarray(self.weights)
        return w / w.sum()

    @classmethod
    def single(
        cls,
        modality_names: Sequence[str],
        input_alphas: float | str | Sequence[float],
        target_alphas: float | str | Sequence[float] | None = None,
        keep: str | Mapping[str, str] = "random",
    ) -> "AlphaMixture":
        """One component: a symmetric Dirichlet (one float) or per-modality alphas.

        Alphas may be a float, a list in `modality_names` order, or the official hyphen string
        (`"1.0-0.5-0.5"`). Without `target_alphas` the target alphas equal the input ones.
        """
        names = list(modality_names)
        ins = _alpha_list(input_alphas, names, "input_alphas")
        tgts = ins if target_alphas is None else _alpha_list(target_alphas, names, "target_alphas")
        keeps = {m: keep for m in names} if isinstance(keep, str) else dict(keep)
        return cls((AlphaComponent("single", dict(zip(names, ins)), dict(zip(names, tgts)), keeps),))

    @classmethod
    def from_official(cls, config: Mapping) -> "AlphaMixture":
        """Read an official `alphas_mixture` YAML (already `yaml.safe_load`-ed).

        Accepts both layouts the official configs use: `{mod: {input_alphas, target_alphas, keep}}`
        and `{sampling_weights: [...], alphas_mixture: {mod: ...}}`.
        """
        per_mod = config.get("alphas_mixture", config)
        weights = config.get("sampling_weights")
        lengths = {len(v["input_alphas"]) for v in per_mod.values()} | {len(v["target_alphas"]) for v in per_mod.values()}
        if len(lengths) != 1:
            raise ConfigError(f"every modality needs the same number of alphas (one per component), got lengths "
                              f"{sorted(lengths)}; give each modality's input_alphas and target_alphas one value per "
                              "component")
        (n,) = lengths
        components = tuple(
            AlphaComponent(
                f"component-{i}",
                {m: float(v["input_alphas"][i]) for m, v in per_mod.items()},
                {m: float(v["target_alphas"][i]) for m, v in per_mod.items()},
                {m: v["keep"][i] for m, v in per_mod.items() if "keep" in v},
            )
            for i in range(n)
        )
        return cls(components, tuple(weights) if weights is not None else None)


_FLOAT_LIST = re.compile(r"(?<=[\d.])-")  # a hyphen after a digit separates; a leading one is a sign


def _alpha_list(value: float | str | Sequence[float], names: list[str], label: str) -> list[float]:
    if isinstance(value, str):
        value = [float(v) for v in _FLOAT_LIST.split(value)]
    if isinstance(value, (int, float)):
        return [float(value)] * len(names)
    values = [float(v) for v in value]
    if len(values) == 1:
        return values * len(names)
    if len(values) != len(names):
        raise ConfigError(f"{label}: {len(values)} values for {len(names)} modalities {names}; give one or one each")
    return values


def _targetable(mods: Sequence[str]) -> list[str]:
    """Raw pixels are never a target (the decoder predicts their tokens instead)."""
    return [m for m in mods if modalities.get(m).kind is not Kind.PIXELS]


def _all_to_all(name: str, mods: Sequence[str], alpha: float, keep: Mapping[str, str]) -> AlphaComponent:
    """Every modality is input and target with the same alpha."""
    return AlphaComponent(
        name,
        {m: alpha for m in mods},
        {m: alpha for m in _targetable(mods)},
        {m: keep[m] for m in mods if m in keep},
    )


def _biased(name: str, mods: Sequence[str], inputs: Mapping[str, float], targets: Mapping[str, float],
            other_input: float, other_target: float, keep: Mapping[str, str]) -> AlphaComponent:
    """Some modalities dominate the input budget; `inputs`/`targets` override the default alphas."""
    return AlphaComponent(
        name,
        {m: inputs.get(m, other_input) for m in mods},
        {m: targets.get(m, other_target) for m in _targetable(mods)},
        {m: keep[m] for m in mods if m in keep},
    )


_M7 = ("rgb@224", "tok_rgb@224", "tok_depth@224", "tok_semseg@224", "tok_normal@224", "tok_clip@224", "caption", "det")
_M21 = _M7 + ("t5_caption", "human_poses", "tok_dinov2@224", "tok_dinov2_global", "tok_imagebind@224",
              "tok_imagebind_global", "tok_canny_edge@224", "tok_sam_edge@224", "color_palette", "metadata", "sam_instance")
_M21_KEEP = {"color_palette": "binary"}

_RGB_TO_ALL_7 = _biased("rgb-to-all", _M7, {"rgb@224": 1000.0}, {}, 0.0, 0.5, {})

#: 4M-7 main recipe (`mix_mod7_all2all_rgb2all_a0.5`): half RGB-to-all, half all-to-all, alpha 0.5.
FOURM_7_MIXTURE = AlphaMixture((_RGB_TO_ALL_7, _all_to_all("all-to-all", _M7, 0.5, {})))

#: 4M-7 `mix_mod7_all2allmix_rgb2all_capbias`: all-to-all at four alphas, RGB-to-all, caption-biased.
FOURM_7_CAPBIAS_MIXTURE = AlphaMixture(
    tuple(_all_to_all(f"all-to-all-a{a:g}", _M7, a, {}) for a in (0.01, 0.1, 1.0, 10.0))
    + (
        _RGB_TO_ALL_7,
        _biased("caption-biased", _M7, {"caption": 5.0}, {}, 0.05, 0.5, {"caption": "all"}),
    ),
    weights=(1.0,) * 6,
)

#: 4M-21 main recipe (`mix_mod21_all2allmix_rgb2all_capT5bias`): all-to-all at four alphas,
#: RGB-to-all, caption-biased and T5-biased (the last two at half weight).
FOURM_21_MIXTURE = AlphaMixture(
    tuple(_all_to_all(f"all-to-all-a{a:g}", _M21, a, _M21_KEEP) for a in (0.01, 0.1, 1.0, 10.0))
    + (
        _biased("rgb-to-all", _M21, {"rgb@224": 1000.0}, {}, 0.0, 0.5, _M21_KEEP),
        _biased("caption-biased", _M21, {"caption": 5.0, "t5_caption": 0.0}, {"caption": 0.0},
                0.05, 0.5, {**_M21_KEEP, "caption": "all"}),
        _biased("t5-biased", _M21, {"t5_caption": 5.0, "caption": 0.0}, {"t5_caption": 0.0},
                0.05, 0.5, {**_M21_KEEP, "t5_caption": "all"}),
    ),
    weights=(1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5),
)


def rgb_to_all_mixture(modality_names: Sequence[str], alpha: float = 0.5,
                       target_alphas: Mapping[str, float] | None = None, rgb_share: float = 0.5,
                       biased_shares: Mapping[str, float] | None = None,
                       biased_input_alphas: Mapping[str, float] | None = None) -> AlphaMixture:
    """The 4M-7 main recipe on any modality set: a share `rgb_share` of the samples (the official
    half) take their inputs from the raw-pixel modality alone (RGB-to-all), the rest from all
    modalities (all-to-all), alpha `alpha` (`target_alphas` overrides it per target modality in all parts).

    The RGB-to-all part is what makes a model good at predicting everything from a photo, the
    task users run most; a symmetric Dirichlet over many modalities rarely shows it. A larger
    share trades generation from other modalities for perception from pixels.

    `biased_shares` ({modality: share}) adds 4M's caption-biased parts: in that share of the samples the
    modality dominates the input (alpha 5, a sequence kept whole; the others 0.05) and is no target. It
    is what trains generation *from* that modality (caption -> RGB): in all-to-all a caption-only
    condition is rare. A key of several modalities joined by `+` (`tok_depth@64+world_caption`) makes them
    dominate together: generation from that combination, which a symmetric Dirichlet over many modalities
    almost never shows whole.

    `biased_input_alphas` ({modality: alpha}) raises some of the rare modalities' input alpha in every biased
    part; they stay targets, so a sample shows a random part of one (`tok_rgb@64`) beside the leading caption
    and asks for the rest. That is the condition of every MaskGIT step after the first (the caption and the
    tokens committed so far), which a part whose only input is the caption never trains.
    """
    rest = all_to_all_share(rgb_share, biased_shares or {})
    names = list(modality_names)
    pixels = [m for m in names if modalities.get(m).kind is Kind.PIXELS]
    if len(pixels) != 1:
        raise ConfigError(f"the rgb-to-all mixture needs exactly one raw-pixel modality (e.g. rgb@224) among "
                          f"{names}, found {pixels}; list exactly one")
    targets = dict(target_alphas or {})
    biased = _checked_biased_shares(biased_shares or {}, names, pixels[0])
    shown = _checked_biased_inputs(biased_input_alphas or {}, biased, names, pixels[0])
    parts = [_biased("rgb-to-all", names, {pixels[0]: 1000.0}, targets, 0.0, alpha, {})]
    for key in biased:
        led = led_modalities(key)
        keep = {m: "all" for m in led if modalities.get(m).kind is Kind.SEQUENCE}
        parts.append(_biased(f"{key}-biased", names, {**shown, **dict.fromkeys(led, 5.0)},
                             {**targets, **dict.fromkeys(led, 0.0)}, 0.05, alpha, keep))
    parts.append(_biased("all-to-all", names, {}, targets, alpha, alpha, {}))
    return AlphaMixture(tuple(parts), weights=(rgb_share, *biased.values(), rest))


def led_modalities(key: str) -> list[str]:
    """The modalities a `biased_shares` key makes lead the input: one name, or several joined by `+`."""
    return str(key).split("+")


def all_to_all_share(rgb_share: float, biased_shares: Mapping[str, float]) -> float:
    """The share of samples `rgb_to_all_mixture` leaves to its all-to-all part, once `rgb_share` and the
    `biased_shares` are checked. Recipes call it when they are read, so that shares which leave no all-to-all part
    are refused at once, not when a later training stage starts."""
    if isinstance(rgb_share, bool) or not isinstance(rgb_share, (int, float)) or not 0.0 < rgb_share < 1.0:
        raise ConfigError(f"rgb_share must lie strictly between 0 and 1 (the official 4M-7 recipe uses 0.5), "
                          f"got {rgb_share!r}")
    if not isinstance(biased_shares, Mapping):
        raise ConfigError(f"biased_shares must map a modality to its share, e.g. {{caption: 0.15}}; "
                          f"got {biased_shares!r}")
    for key, share in biased_shares.items():
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 < float(share) < 1.0:
            raise ConfigError(f"biased_shares[{key!r}] must be a number strictly between 0 and 1, got {share!r}")
    rest = 1.0 - rgb_share - sum(float(s) for s in biased_shares.values())
    if rest < 1e-6:  # float sums: 0.7 + 0.3 leaves 5e-17
        raise ConfigError(f"rgb_share {rgb_share} plus the biased_shares {dict(biased_shares)} leave no all-to-all "
                          f"samples ({rest:g}); keep their sum below 1")
    return rest


def _checked_biased_shares(shares: Mapping[str, float], names: Sequence[str], pixels: str) -> dict[str, float]:
    for key in shares:
        led = led_modalities(key)
        if len(set(led)) != len(led):
            raise ConfigError(f"biased_shares key {key!r} names a modality twice; name each once")
        for mod in led:
            _check_biased_modality("biased_shares", mod, names, pixels)
    return {m: float(s) for m, s in shares.items()}


def _check_biased_modality(option: str, mod: str, names: Sequence[str], pixels: str) -> None:
    """A modality a biased part names: one of the modalities, and not the raw pixels (their part is rgb_share)."""
    if mod not in names:
        raise ConfigError(f"{option} names {mod!r}, which the modalities lack; choose from {list(names)}"
                          + (" (join several with '+')" if option == "biased_shares" else ""))
    if mod == pixels:
        raise ConfigError(f"{option} names the raw-pixel modality {mod!r}, whose part is rgb_share; name another "
                          "modality")


def _checked_biased_inputs(alphas: Mapping[str, float], biased: Mapping[str, float], names: Sequence[str],
                           pixels: str) -> dict[str, float]:
    if not isinstance(alphas, Mapping):
        raise ConfigError(f"biased_input_alphas must map a modality to its input alpha, e.g. {{tok_rgb@64: 1.0}}; "
                          f"got {alphas!r}")
    if alphas and not biased:
        raise ConfigError("biased_input_alphas sets input alphas in the biased parts, and biased_shares adds none; "
                          "add biased_shares or drop biased_input_alphas")
    leading = {m for key in biased for m in led_modalities(key)}
    for mod, value in alphas.items():
        _check_biased_modality("biased_input_alphas", mod, names, pixels)
        if mod in leading:
            raise ConfigError(f"biased_input_alphas names {mod!r}, which already leads a biased part (alpha 5, kept "
                              "whole); name a modality the parts show in part")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value) > 0:
            raise ConfigError(f"biased_input_alphas[{mod!r}] must be a number > 0 (the others' is 0.05), got {value!r}")
    return {m: float(a) for m, a in alphas.items()}


OFFICIAL_MIXTURES: dict[str, AlphaMixture] = {
    "4m-7": FOURM_7_MIXTURE,
    "4m-7-capbias": FOURM_7_CAPBIAS_MIXTURE,
    "4m-21": FOURM_21_MIXTURE,
}


__all__ = [
    "AlphaComponent", "AlphaMixture", "FOURM_7_MIXTURE", "FOURM_7_CAPBIAS_MIXTURE", "FOURM_21_MIXTURE",
    "OFFICIAL_MIXTURES", "all_to_all_share", "led_modalities", "rgb_to_all_mixture",
]
