"""Batch assembly: per-sample entries stack into a valid batch."""

from __future__ import annotations

import numpy as np
import pytest

from open4m import modalities
from open4m.batch import validate_mod_dict
from open4m.data.masking import FOURM_21_MIXTURE, DirichletMasking, collate

from masking_samples import sample_for


def test_collate_gives_a_valid_batch():
    masker = DirichletMasking(FOURM_21_MIXTURE, 256, 256)
    sample = sample_for(modalities.FOURM_21)
    rng = np.random.default_rng(5)
    batch = collate([masker(sample, rng) for _ in range(3)])
    assert validate_mod_dict(batch) == 3
    assert batch["caption"]["tensor"].shape == (3, 2 * 257)
    assert batch["t5_caption"]["tensor"].shape == (3, 77, 8)
    with pytest.raises(ValueError, match="has modalities"):
        collate([masker(sample, rng), {"caption": masker(sample, rng)["caption"]}])
