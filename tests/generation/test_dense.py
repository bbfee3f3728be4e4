"""Dense generation: repeated prompted passes for one sample, merged SAM instances."""

from __future__ import annotations

import pytest
import torch

from open4m.generation import Sampler, ScheduleStep
from open4m.generation.dense import box_iou, generate_dense, merge_sam_instances
from open4m.model import FourM, preset
from open4m.tokenizers.sequences import SamInstance, SamInstanceCodec, SamQuery


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    torch.manual_seed(0)
    mods = ["rgb@224", "caption"]
    model = FourM(preset("tiny-swiglu_nobias", domains_in=mods, domains_out=["caption"], dim=32, encoder_depth=1,
                         decoder_depth=1, num_heads=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return Sampler(model)


def test_repeated_passes_sample_independently_and_reproduce(sampler):
    rgb = torch.randn(1, 3, 224, 224)
    step = ScheduleStep("caption", "autoregressive", 8, 1.0)
    rows = generate_dense(sampler, {"rgb@224": rgb}, step, repeats=4, generator=torch.Generator().manual_seed(0))
    again = generate_dense(sampler, {"rgb@224": rgb}, step, repeats=4, generator=torch.Generator().manual_seed(0))
    assert len(rows) == 4 and rows == again
    assert len({tuple(r) for r in rows}) > 1
    with pytest.raises(ValueError, match="repeats ONE sample"):
        generate_dense(sampler, {"rgb@224": torch.randn(2, 3, 224, 224)}, step)


def test_merge_keeps_largest_first_and_drops_duplicates():
    codec = SamInstanceCodec()
    big, dup, small = (SamInstance((0, 0, 100, 100), tuple(range(16))), SamInstance((0, 0, 100, 99), (1,) * 16),
                       SamInstance((10, 10, 20, 20), (2,) * 16))
    texts = [codec.to_text([SamQuery((5, 5), (small, big))]), codec.to_text([SamQuery((50, 50), (dup,))]),
             "point v0=3 polygon garbage"]
    merged = merge_sam_instances(texts)
    assert merged == [big, small]
    assert box_iou(big.box, dup.box) > 0.9 and box_iou(big.box, small.box) < 0.1
