"""Dense generation: repeated prompted passes for one sample, merged SAM instances."""

from __future__ import annotations

import pytest
import torch

from open4m.generation import Sampler, ScheduleStep
from open4m.generation.dense import box_iou, colorize_instances, generate_dense, merge_sam_instances, sam_instance_map
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


class PatternMasks:
    """A stand-in SAM mask tokenizer: the first code picks the decoded 64x64 mask logits.

    0: flat (no contrast, dropped), 1: everything, 2: left half, 3: right half.
    """

    vocab_size = 1024

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        out = torch.full((codes.shape[0], 1, 64, 64), -10.0)
        for i, c in enumerate(codes[:, 0].tolist()):
            if c == 0:
                out[i] = 0.0
            elif c == 1:
                out[i, :, 1:-1, 1:-1] = 10.0
            else:
                out[i, :, :, slice(0, 32) if c == 2 else slice(32, 64)] = 10.0
        return out


def test_instance_map_merges_duplicates_and_paints_largest_first():
    codec = SamInstanceCodec()
    inst = {
        "big": SamInstance((0, 0, 100, 100), (1,) * 16), "big_again": SamInstance((0, 0, 100, 99), (1,) * 16),
        "small": SamInstance((10, 10, 30, 30), (1,) * 16), "flat": SamInstance((150, 150, 200, 200), (0,) * 16),
        "left": SamInstance((100, 150, 200, 200), (2,) * 16), "right": SamInstance((100, 150, 200, 200), (3,) * 16),
    }
    texts = [codec.to_text([SamQuery((5, 5), (inst["big"], inst["small"]))]),
             codec.to_text([SamQuery((50, 50), (inst["big_again"],)), SamQuery((160, 160), (inst["flat"],))]),
             codec.to_text([SamQuery((120, 170), (inst["left"], inst["right"]))]), "point v0=3 polygon garbage"]
    ids = sam_instance_map(texts, PatternMasks())
    assert ids.shape == (224, 224) and ids.dtype.name == "int32"
    # big + big_again are one instance (box IoU 0.99, same mask); left/right share a box but not a mask.
    assert sorted(set(ids.ravel().tolist())) == [0, 1, 2, 3, 4]
    big, left, right, small = ids[50, 50], ids[175, 110], ids[175, 190], ids[20, 20]
    assert len({big, left, right, small}) == 4 and 0 not in {big, left, right, small}
    assert small > big  # painted later: on top of the big one
    assert ids[175, 175] in (left, right) and ids[210, 210] == 0 and ids[120, 5] == 0
    picture = colorize_instances(ids)
    assert picture.size == (224, 224) and picture.getpixel((210, 210)) == (0, 0, 0)
    assert sam_instance_map([], PatternMasks()).max() == 0


def test_instance_map_refuses_codes_beyond_the_mask_tokenizer():
    class Small(PatternMasks):
        vocab_size = 512

    with pytest.raises(ValueError, match="outside the mask tokenizer"):
        sam_instance_map([SamInstance((0, 0, 10, 10), (700,) * 16)], Small())


def test_instance_map_with_a_real_vq_tokenizer():
    """The map works with an open4m VQ-VAE of the SAM mask tokenizer's shape (64 px, 1 channel, 4x4 codes)."""
    from open4m.tokenizers import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    tok = VQVAE(VQVAEConfig(image_size=64, n_channels=1, enc_type="vit_t_enc", dec_type="vit_t_dec", patch_size=16,
                            codebook_size=1024, latent_dim=8)).eval()
    instances = [SamInstance((20, 30, 120, 90), tuple(range(16))), SamInstance((0, 0, 50, 50), tuple(range(16, 32)))]
    ids = sam_instance_map(instances, tok, min_contrast=0.0)
    assert ids.shape == (224, 224) and set(ids.ravel().tolist()) <= {0, 1, 2}
    assert (ids[30:90, 20:120] > 0).any() or (ids[:50, :50] > 0).any()
    assert not (ids[100:, 130:] > 0).any()  # nothing outside the boxes
