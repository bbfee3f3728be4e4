"""benchmarks/divae_decode.py on tiny configs: the tables have a row per (sampler, steps); no timings asserted."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from open4m.tokenizers import DiVAE, DiVAEConfig

BENCHMARK = "divae_decode"  # the `bench` fixture (tests/benchmarks/conftest.py) loads it


def test_measure_gives_one_row_per_sampler_and_step_count(bench):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = DiVAE(DiVAEConfig(image_size=32, n_channels=3, enc_type="vit_t_enc", patch_size=8, codebook_size=64,
                            latent_dim=8, dec_channels=16, dec_channel_mult=(1, 2))).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    originals = bench.to_uint8(x)
    rows, reference, kept = bench.measure(tok, tok.encode(x), steps=(1, 2), samplers=bench.SAMPLERS, ref_steps=3,
                                          timing_images=1, originals=originals, keep=[("ddim/trailing", 2)])
    assert [(r["sampler"], r["steps"]) for r in rows] == [(s, n) for s in bench.SAMPLERS for n in (1, 2)]
    for r in rows:
        assert {"s_per_image", "s_per_step", "batch_s_per_image", "rmse_vs_ref", "psnr_vs_ref", "psnr", "ssim"} <= set(r)
        assert all(math.isfinite(r[k]) for k in ("rmse_vs_ref", "psnr", "ssim"))
        assert -1 <= r["ssim"] <= 1
    assert reference["steps"] == 3 and reference["check_steps"] == 6
    assert kept[("ddim/trailing", 2)].shape == (2, 32, 32, 3) and kept[("ddim/trailing", 2)].dtype == np.uint8
    table = bench.world_table(rows, 3, 2).splitlines()
    assert len(table) == 2 + len(rows) and table[0].split()[0] == "sampler"


def test_metrics_are_sane(bench):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    assert bench.ssim(a, a) == pytest.approx(1.0)
    assert bench.psnr(a, a) > 100
    b = np.clip(a.astype(int) + 8, 0, 255).astype(np.uint8)
    assert bench.ssim(a, b) < 1.0 and 25 < bench.psnr(a, b) < 35
    with pytest.raises(ValueError, match="sampler"):
        bench.parse_sampler("euler/trailing")


def test_main_runs_every_part_on_a_tiny_config(bench, tmp_path, capsys):
    args = ["--work", str(tmp_path), "--parts", "fixture,world", "--steps", "1,2", "--ref-steps", "2",
            "--train-steps", "2", "--train-scenes", "8", "--batch-size", "4", "--dec-channels", "8",
            "--eval-scenes", "2", "--timing-images", "1", "--grid-scenes", "2", "--no-baseline",
            "--json", str(tmp_path / "out.json")]
    bench.main(args)
    result = json.loads((tmp_path / "out.json").read_text())
    expected = [[s, n] for s in bench.SAMPLERS for n in (1, 2)]
    assert [[r["sampler"], r["steps"]] for r in result["world"]["rows"]] == expected
    assert result["world"]["train"]["recipe"]["steps"] == 2
    assert (tmp_path / "divae_steps.png").exists()
    out = capsys.readouterr().out
    assert "[3] world DiVAE" in out
    if "fixture" in result:  # the shared reference fixtures are present
        assert [[r["sampler"], r["steps"]] for r in result["fixture"]["rows"]] == expected
        assert "[1] official architecture" in out
    # a second run reuses the trained tokenizer
    bench.main(args[:-2] + ["--parts", "world"])
    assert json.loads((tmp_path / "divae_decode.json").read_text())["world"]["train"]["cached"] is True
