"""TransferMasking: fixed roles for fine-tuning and evaluation."""

from __future__ import annotations

import pytest

from open4m.batch import validate_mod_dict
from open4m.data.masking import TransferMasking, collate, merge_spans, split_sequence

from masking_samples import sample_for


def test_transfer_masking():
    masker = TransferMasking(["rgb@224", "caption"], ["tok_depth@224", "det"])
    sample = sample_for(["rgb@224", "caption", "tok_depth@224", "det", "tok_normal@224"])
    out = masker(sample)
    assert set(out) == {"rgb@224", "caption", "tok_depth@224", "det"}
    assert not out["rgb@224"]["input_mask"].any() and out["rgb@224"]["target_mask"].all()
    depth = out["tok_depth@224"]
    assert depth["input_mask"].all() and not depth["target_mask"].any()
    assert int(depth["decoder_attention_mask"][0]) == 196
    cap_in, cap_tgt = split_sequence(out["caption"])
    assert cap_in == sample["caption"] + [3] and cap_tgt == []
    det_in, det_tgt = split_sequence(out["det"])
    assert det_in == [] and det_tgt[0] == 5 and det_tgt[-1] == 6
    assert merge_spans([5], det_tgt) == [t for c in sample["det"] for t in c] + [3]
    assert validate_mod_dict(collate([out, out])) == 2
    with pytest.raises(ValueError, match="cannot be a target"):
        TransferMasking(["caption"], ["rgb@224"])
    with pytest.raises(ValueError, match="both inputs and targets"):
        TransferMasking(["caption"], ["caption"])
