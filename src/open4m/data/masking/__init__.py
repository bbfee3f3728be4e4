"""4M's training objective: which tokens of a sample the encoder sees and which the decoder predicts.

Per sample, a fixed number of input tokens (e.g. 128) and of target tokens (e.g. 128) is split
across modalities by Dirichlet draws, so one batch mixes every input/target combination from
"almost everything is RGB" to "a bit of everything". A *mixture* of Dirichlet configurations
(named components such as "rgb-to-all" and "all-to-all", with weights) is sampled per sample.

Image-like modalities hide random token positions; sequences are corrupted T5-style: runs of
masked tokens (or whole chunks: one box, one metadata pair) become sentinels `[S_k]` in the input,
and the target lists each sentinel followed by the tokens it hides. Inputs and targets are
disjoint by construction, and :func:`merge_spans` inverts the corruption.

Every random draw comes from a `numpy.random.Generator` passed in by the caller, so a data loader
that derives it from (seed, epoch, sample index) reproduces every batch after a resume.

The package is split by job (each module's docstring lists its deliberate deviations from the
official `UnifiedMasking` / `TransferMasking`):

- :mod:`.mixtures`: alpha configurations (`AlphaComponent`, `AlphaMixture`), the official recipes
  (`OFFICIAL_MIXTURES`) and `rgb_to_all_mixture`;
- :mod:`.budgets`: `DirichletMasking`, the per-sample Dirichlet token budgets and the masking of
  one sample;
- :mod:`.spans`: T5-style span corruption of sequences, `merge_spans`, `split_sequence`;
- :mod:`.transfer`: `TransferMasking`, fixed roles for fine-tuning and evaluation;
- :mod:`.assembly`: one sample's entry per modality in the fixed layout, and `collate`.

Special token ids are :class:`open4m.modalities.SpecialTokens` (re-exported here).
"""

from __future__ import annotations

from ...modalities import SpecialTokens
from .assembly import collate
from .budgets import DirichletMasking
from .mixtures import (
    FOURM_7_CAPBIAS_MIXTURE,
    FOURM_7_MIXTURE,
    FOURM_21_MIXTURE,
    OFFICIAL_MIXTURES,
    AlphaComponent,
    AlphaMixture,
    all_to_all_share,
    led_modalities,
    rgb_to_all_mixture,
)
from .spans import KEEP_SCHEMES, merge_spans, split_sequence
from .transfer import TransferMasking

__all__ = [
    "SpecialTokens", "AlphaComponent", "AlphaMixture", "FOURM_7_MIXTURE", "FOURM_7_CAPBIAS_MIXTURE", "FOURM_21_MIXTURE",
    "OFFICIAL_MIXTURES", "all_to_all_share", "led_modalities", "rgb_to_all_mixture", "DirichletMasking", "TransferMasking", "merge_spans", "split_sequence", "collate", "KEEP_SCHEMES",
]
