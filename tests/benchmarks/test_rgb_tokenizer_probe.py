"""benchmarks/rgb_tokenizer_probe.py at toy scale: a row for the photo, the model's tokenizer and each config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

BENCHMARK = "rgb_tokenizer_probe"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it


def test_parse_config(bench):
    assert bench.parse_config("128x2:3000") == (128, 2, None, 3000)
    assert bench.parse_config("128x2/4:3000") == (128, 2, 4, 3000)
    with pytest.raises(ValueError):
        bench.parse_config("128:3000")


def test_measure_reads_back_the_photo_and_each_round_trip(bench):
    from open4m.data.synthetic.world import render_world
    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples
    from open4m.recipes.world import load_recipe

    torch.set_num_threads(1)
    model = EvalModel.load(None)
    val = load_samples(limit=3, split="val", image_size=model.image_size, caption_order=model.caption_order)
    train = render_world("train", 8, model.image_size, progress=False)
    rows = bench.measure(model, val, train, load_recipe().tokenizers, ["16x1:24", "16x1/16:24"],
                         ["32x1:6"])
    assert [r[0] for r in rows] == ["photo itself", "the model's tokenizer", "16x1, 24 steps",
                                    "16x1, 4x4 tokens, 24 steps", "its decoder 32x1, 6 steps"]
    assert math.isinf(rows[0][2]) and all(math.isfinite(r[2]) for r in rows[1:])
    for _, _, _, scores, other, _ in rows:
        assert 0 <= scores["shape_f1"] <= 1 and 0 <= scores["count_acc"] <= 1 and 0 <= other["shape_f1"] <= 1
    # the shipped tokenizer round-trips far better than 24 steps of a 16-wide one
    assert rows[1][2] > rows[2][2]
    # the model's caption -> RGB grids are read for the tokenizers that share its tokens, and only for those
    assert [r[5] is not None for r in rows] == [False, True, False, False, True]
    for drawn, other in (r[5] for r in rows if r[5]):
        assert 0 <= drawn["shape_f1"] <= 1 and 0 <= other["shape_f1"] <= 1


def test_a_refit_decoder_keeps_the_encoder_and_codebook_and_trains_only_the_decoder(bench, tmp_path):
    from open4m.data.synthetic.world import render_world
    from open4m.eval.models import EvalModel
    from open4m.recipes.world import load_recipe

    torch.set_num_threads(1)
    own = EvalModel.load(None).tokenizer("tok_rgb@64")
    train = render_world("train", 8, 64, progress=False)
    refit = bench.refit_decoder(own, train, load_recipe().tokenizers, 32, 1, 4, tmp_path / "refit")
    assert refit.config.dec_dim == 32 and refit.config.enc_dim == own.config.enc_dim
    before, after = own.state_dict(), refit.state_dict()
    kept = [k for k in before if k.partition(".")[0] not in ("decoder", "post_quant_proj")]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)  # EMA included: nothing frozen moved


def test_round_trip_gives_uint8_photos(bench):
    from open4m.eval.models import EvalModel

    model = EvalModel.load(None)
    photos = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    out = bench.round_trip(model.tokenizer(model.image_modality("rgb")), photos)
    assert out.shape == photos.shape and out.dtype == np.uint8
