"""Per-sample token budgets and the 4M pre-training masker, `DirichletMasking`.

Per sample, a fixed number of input tokens (e.g. 128) and of target tokens (e.g. 128) is split
across modalities by Dirichlet draws of one component of an alpha mixture (:mod:`.mixtures`), so
one batch mixes every input/target combination from "almost everything is RGB" to "a bit of
everything". Each modality is then masked to its budgets: image-like modalities hide random token
positions, sequences are span-masked (:mod:`.spans`), and every entry takes the fixed layout of
:mod:`.assembly`.

Every random draw comes from a `numpy.random.Generator` passed in by the caller, so a data loader
that derives it from (seed, epoch, sample index) reproduces every batch after a resume.

Deviation from the official `UnifiedMasking`, deliberate:
- An alpha of 0 means *never* (the modality is left out of the Dirichlet draw), not "alpha 1e-9";
  input-only modalities (raw pixels, sequence embeddings, `input_only=`) never receive target
  budget, so none of it is wasted on `t5_caption` as in the official 4M-21 recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch

from ... import modalities
from ...batch import ModalityBatch
from ...errors import ConfigError, DataError
from ...modalities import Kind, Modality, SpecialTokens
from .assembly import _embedding_entry, _image_entry, _image_positions, _sequence_entry
from .mixtures import AlphaMixture
from .spans import SampleValue, _check_sentinels, _embedding_input, _embedding_units, _span_mask, _units


def _as_range(value: int | tuple[int, int], label: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not 0 <= lo <= hi:
        raise ConfigError(f"{label}={value!r}: give a count >= 0 or a range (min, max) with min <= max")
    return int(lo), int(hi)


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")


@dataclass(frozen=True)
class _Plan:
    """What the masker knows about one modality, resolved once at construction."""

    mod: Modality
    n: int  # token positions (image-like) or max sequence length
    can_input: bool
    can_target: bool


class DirichletMasking:
    """The 4M pre-training masking: a per-sample Dirichlet split of fixed input/target budgets.

    `input_tokens` / `target_tokens` are a fixed count or a (min, max) range drawn uniformly per
    sample. `input_only` / `target_only` restrict roles on top of what the registry allows (raw
    pixels and sequence embeddings are always input-only). Call it with one sample (modality →
    token ids, chunks or pixels) and a `numpy.random.Generator` (or an int seed).

    `allow_missing=True` accepts samples that lack some of the mixture's modalities (a caption-only
    corpus mixed with image datasets): only components with a present input and a present target
    are drawn, budgets are split over the present modalities, and each absent one gets a fully
    hidden placeholder so samples from different datasets still collate into one batch. A sample
    with every modality is masked exactly as without the option.
    """

    def __init__(
        self,
        mixture: AlphaMixture,
        input_tokens: int | tuple[int, int] = 128,
        target_tokens: int | tuple[int, int] = 128,
        *,
        image_size: int = 224,
        input_only: Iterable[str] = (),
        target_only: Iterable[str] = (),
        special: SpecialTokens = SpecialTokens(),
        allow_missing: bool = False,
    ) -> None:
        self.mixture = mixture
        self.allow_missing = allow_missing
        self.input_range = _as_range(input_tokens, "input_tokens")
        self.target_range = _as_range(target_tokens, "target_tokens")
        self.image_size = image_size
        self.special = special
        input_only, target_only = set(input_only), set(target_only)
        if input_only & target_only:
            raise ConfigError(f"modalities {sorted(input_only & target_only)} are both input-only and target-only; "
                              "list each in at most one of input_only / target_only")
        names = mixture.modalities
        for extra in (input_only | target_only) - set(names):
            raise ConfigError(f"input_only/target_only name {extra!r}, which the alpha mixture does not mention; "
                              f"use some of {list(names)} or add it to the mixture")
        self.plans: dict[str, _Plan] = {}
        for name in names:
            mod = modalities.get(name)
            if mod.kind not in (Kind.PIXELS, Kind.IMAGE_TOKENS, Kind.SEQUENCE, Kind.SEQUENCE_EMBEDDING):
                raise ConfigError(f"modality {name!r} is {mod.kind.value} data the model never sees; tokenize it and use the tok_ modality")
            can_input = mod.encoder and name not in target_only
            can_target = mod.decoder and name not in input_only
            self.plans[name] = _Plan(mod, mod.num_tokens(image_size), can_input, can_target)
        _check_sentinels((p.mod for p in self.plans.values()), special)
        order = list(self.plans)
        self._caps = np.array([p.n for p in self.plans.values()])
        self._is_image = np.array([p.mod.is_image_like for p in self.plans.values()])
        self._alphas = [
            (self._alpha_vector(c.input_alphas, order, "can_input"), self._alpha_vector(c.target_alphas, order, "can_target"))
            for c in mixture.components
        ]

    def _alpha_vector(self, alphas: Mapping[str, float], order: list[str], role: str) -> np.ndarray:
        return np.array([alphas.get(m, 0.0) if getattr(self.plans[m], role) else 0.0 for m in order])

    # -- budgets -----------------------------------------------------------------------------
    @staticmethod
    def _split(alphas: np.ndarray, total: int, caps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Dirichlet split of `total`; the floor remainder goes to argmaxes of further draws."""
        budget = np.zeros(len(alphas), dtype=np.int64)
        active = np.flatnonzero(alphas > 0)
        if len(active) == 0 or total == 0:
            return budget
        a = alphas[active]
        share = np.floor(rng.dirichlet(a) * total).astype(np.int64)
        rest = total - int(share.sum())
        if rest:
            share += np.bincount(rng.dirichlet(a, size=rest).argmax(axis=1), minlength=len(a))
        budget[active] = share
        return np.minimum(budget, caps)

    def sample_budgets(self, rng: np.random.Generator | int,
                       present: Iterable[str] | None = None) -> tuple[int, dict[str, int], dict[str, int]]:
        """(component index, input budget per modality, target budget per modality) for one sample.

        `present` (default: all) restricts the draw to the modalities a sample actually has.
        """
        rng = _as_rng(rng)
        names = list(self.plans)
        have = np.ones(len(names), dtype=bool) if present is None else np.isin(names, list(present))
        probs = self.mixture.probabilities
        if not have.all():
            usable = np.array([(a[have] > 0).any() and (t[have] > 0).any() for a, t in self._alphas])
            if not usable.any():
                raise DataError(f"no component of the alpha mixture has both an input and a target among the "
                                f"sample's modalities {[n for n, h in zip(names, have) if h]}; add modalities to the "
                                "sample or a component that uses these ones to the mixture")
            probs = np.where(usable, probs, 0.0)
            probs = probs / probs.sum()
        comp = int(rng.choice(len(self._alphas), p=probs)) if len(self._alphas) > 1 else 0
        in_alphas, tgt_alphas = (a * have for a in self._alphas[comp])
        n_in = int(rng.integers(self.input_range[0], self.input_range[1] + 1))
        n_tgt = int(rng.integers(self.target_range[0], self.target_range[1] + 1))
        inputs = self._split(in_alphas, n_in, self._caps, rng)
        # Image inputs and targets are disjoint patches; sequences are disjoint by span masking.
        target_caps = np.where(self._is_image, self._caps - inputs, self._caps)
        targets = self._split(tgt_alphas, n_tgt, target_caps, rng)
        return comp, dict(zip(names, inputs.tolist())), dict(zip(names, targets.tolist()))

    # -- masking -----------------------------------------------------------------------------
    def __call__(self, sample: Mapping[str, SampleValue], rng: np.random.Generator | int) -> dict[str, ModalityBatch]:
        rng = _as_rng(rng)
        missing = [m for m in self.plans if m not in sample]
        if missing and not self.allow_missing:
            raise DataError(f"sample lacks modalities {missing} that the alpha mixture uses; add them, drop them from "
                            "the mixture, or mask with allow_missing=True (datasets with fewer modalities)")
        comp, in_budget, tgt_budget = self.sample_budgets(rng, None if not missing else
                                                          [m for m in self.plans if m in sample])
        component = self.mixture.components[comp]
        out: dict[str, ModalityBatch] = {}
        for name, plan in self.plans.items():
            if name in missing:
                out[name] = self._absent(plan)
                continue
            value, kind = sample[name], plan.mod.kind
            if kind in (Kind.PIXELS, Kind.IMAGE_TOKENS):
                tensor = torch.as_tensor(value)
                if kind is Kind.IMAGE_TOKENS:
                    tensor = tensor.long()
                n = _image_positions(plan.mod, tensor, self.image_size)
                perm = rng.permutation(n)
                ni = in_budget[name]
                out[name] = _image_entry(tensor, n, perm[:ni], perm[ni:ni + tgt_budget[name]])
            elif kind is Kind.SEQUENCE:
                units = _units(value, name, self.special.eos, plan.n)
                inp, tgt = _span_mask(units, in_budget[name], tgt_budget[name], component.keep_scheme(name), rng, self.special)
                out[name] = _sequence_entry(inp, tgt, plan.n, self.special)
            else:
                emb, units = _embedding_units(value, name, plan.n)
                inp, _ = _span_mask(units, in_budget[name], None, component.keep_scheme(name), rng, self.special)
                out[name] = _embedding_entry(emb, _embedding_input(inp), plan.n)
        return out

    def _absent(self, plan: _Plan) -> ModalityBatch:
        """A placeholder for a modality the sample lacks: shaped like a real entry, every position hidden."""
        mod, none = plan.mod, np.array([], dtype=np.int64)
        if mod.kind is Kind.IMAGE_TOKENS:
            return _image_entry(torch.zeros(plan.n, dtype=torch.long), plan.n, none, none)
        if mod.kind is Kind.PIXELS:
            size = mod.image_size or self.image_size
            return _image_entry(torch.zeros(mod.num_channels or 3, size, size), plan.n, none, none)
        if mod.kind is Kind.SEQUENCE:
            return _sequence_entry([], [], plan.n, self.special)
        return _embedding_entry(torch.zeros(0, mod.orig_emb_dim or 1), [], plan.n)


__all__ = ["DirichletMasking"]
