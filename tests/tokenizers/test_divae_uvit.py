"""The official UViT DiVAE decoder against golden files made by the reference code, and its sizing rules.

``golden/divae_uvit_tiny*.safetensors`` come from ``golden/make_uvit_golden.py`` run in the official
implementation (see that script): a tiny DiVAE with the published UViT config's settings (concat
conditioning, v-prediction, shifted_cosine:0.5), every parameter perturbed, and a second decoder with
cross-attention conditioning and long skips.
"""

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from open4m.tokenizers import DiVAE, DiVAEConfig, load_tokenizer
from open4m.tokenizers.uvit import UVIT_PRESETS, UViT, resolve_uvit_size

GOLDEN = Path(__file__).parent / "golden"
TIMESTEPS = (0, 500, 999)


@pytest.fixture(scope="module")
def golden():
    return load_file(str(GOLDEN / "divae_uvit_tiny_golden.safetensors"))


@pytest.fixture(scope="module")
def concat():
    return load_tokenizer(GOLDEN / "divae_uvit_tiny.safetensors")


@pytest.fixture(scope="module")
def xattn(concat, golden):
    """The golden file's cross-attention decoder on the checkpoint's encoder and quantizer."""
    tok = DiVAE(replace(concat.config, dec_type="uvit_t_p2_f8_longskip", conditioning="xattn"))
    state = {k: v for k, v in concat.state_dict().items() if not k.startswith("decoder.")}
    state.update({k.removeprefix("xattn."): v for k, v in golden.items() if k.startswith("xattn.decoder.")})
    tok.load_official_state_dict(state)
    return tok.eval()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def test_official_metadata_builds_the_uvit_and_tokens_match(concat, golden):
    c = concat.config
    assert isinstance(concat.decoder, UViT) and concat.decoder.size == UVIT_PRESETS["uvit_t_p2_f8"]
    assert (c.conditioning, c.dec_transformer_dropout, c.prediction_type, c.beta_schedule) == (
        "concat", 0.2, "v_prediction", "shifted_cosine:0.5")
    assert int((concat.encode(golden["input"]) != golden["tokens"]).sum()) == 0
    assert _max_diff(concat.tokens_to_latent(golden["tokens"]), golden["quant"]) < 1e-6


@pytest.mark.parametrize("kind", ["concat", "xattn"])
@pytest.mark.parametrize("masked", [False, True])
def test_denoiser_outputs_match(request, golden, kind, masked):
    tok = request.getfixturevalue(kind)
    prefix = "xattn." if kind == "xattn" else ""
    mask = golden["cond_mask"] if masked else None  # half of sample 0's latent, all of sample 1's
    for t in TIMESTEPS:
        with torch.no_grad():
            out = tok.decoder(golden["denoiser.noised"], torch.tensor(t), golden["quant"], cond_mask=mask)
        key = f"{prefix}denoiser.{'masked.' if masked else ''}t{t}"
        assert _max_diff(out, golden[key]) < 1e-4, key


@pytest.mark.parametrize("kind, key, options", [
    ("concat", "decode.ddim10", dict(scheduler="ddim")),
    ("concat", "decode.ddpm10", dict(scheduler="ddpm", spacing="leading")),  # the official DDPM spacing
    ("xattn", "xattn.decode.ddim10", dict(scheduler="ddim")),
])
def test_ten_step_decodes_match(request, golden, kind, key, options):
    tok = request.getfixturevalue(kind)
    out = tok.decode(golden["tokens"], steps=10, generator=torch.Generator().manual_seed(0), **options)
    assert _max_diff(out, golden[key]) < 1e-3


# (state-dict tensors, elements) of the official presets, as the reference builds them (latent 32, RGB).
OFFICIAL_STATE_SIZES = {
    ("uvit_b_p4_f16", "concat"): (334, 128127491), ("uvit_b_p4_f16", "xattn"): (451, 157086467),
    ("uvit_l_p4_f16", "concat"): (526, 393062659), ("uvit_h_p4_f16", "concat"): (654, 771263491),
    ("uvit_b_p4_f16_longskip", "concat"): (362, 144661763), ("uvit_l_p4_f16_longskip", "xattn"): (813, 527574851),
    ("uvit_b_p4_f8", "concat"): (328, 126357251), ("uvit_l_p4_f8", "concat"): (520, 391292419),
    ("uvit_b_p4_f16_extraconv", "concat"): (390, 161573635), ("uvit_l_p4_f16_extraconv", "xattn"): (819, 516481027),
}


@pytest.mark.parametrize("name, conditioning", sorted(OFFICIAL_STATE_SIZES))
def test_presets_resolve_by_name_to_the_official_state_dicts(name, conditioning):
    with torch.device("meta"):
        net = UViT(3, 32, resolve_uvit_size(name), conditioning)
    state = net.state_dict()
    assert (len(state), sum(v.numel() for v in state.values())) == OFFICIAL_STATE_SIZES[name, conditioning]
    assert net.size.multiple == int(name.split("_f")[1].split("_")[0])


def _config(**fields) -> DiVAEConfig:
    return DiVAEConfig(image_size=32, enc_type="vit_t_enc", patch_size=8, codebook_size=64, latent_dim=8, **fields)


def test_explicit_fields_override_a_preset_and_size_a_new_name():
    tok = DiVAE(_config(dec_type="uvit_b_p4_f16", dec_channels=32, dec_dim=64, dec_depth=1, dec_heads=2))
    size = tok.decoder.size
    assert (size.block_out_channels, size.mid_dim, size.mid_layers) == ((32, 64), 64, 1)
    assert size.downsample_before_mid and size.patch_size == 4
    explicit = dict(dec_channels=32, dec_channel_mult=(1, 2), dec_dim=64, dec_depth=3, dec_heads=2)
    size = DiVAE(_config(dec_type="uvit_mine_p4_f16_longskip", **explicit)).decoder.size
    assert (size.downsample_before_mid, size.mid_use_long_skip, size.multiple) == (True, True, 16)
    assert not DiVAE(_config(dec_type="uvit_mine_p4_f8", **explicit)).decoder.size.downsample_before_mid
    with pytest.raises(ValueError, match="factor of 8"):
        DiVAE(_config(dec_type="uvit_mine_p4_f32", **explicit))


def test_an_unknown_uvit_name_without_sizes_is_a_clear_error():
    with pytest.raises(ValueError, match="not a UViT preset.*set dec_channels, dec_channel_mult, dec_dim, dec_depth"):
        DiVAE(_config(dec_type="uvit_x_p4_f16"))
    with pytest.raises(ValueError, match="conditioning must be 'concat' or 'xattn'"):
        _config(dec_type="uvit_t_p2_f8", conditioning="add")


def test_a_training_step_backpropagates_through_the_uvit(concat):
    tok = copy.deepcopy(concat).train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    loss, x0, _ = tok.training_loss(x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and x0.shape == x.shape
    # The perturbed weights open every branch, so every decoder parameter but the (unused) mask token learns.
    silent = [n for n, p in tok.decoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == ["mid_block.mask_token"]
    fresh = DiVAE(_config(dec_type="uvit_t_p2_f8_longskip", conditioning="xattn", dec_transformer_dropout=0.1))
    fresh.training_loss(x, generator=torch.Generator().manual_seed(0))[0].backward()
    assert fresh.decoder.mid_block.mid_block[2].adaLN_gate.weight.grad.abs().sum() > 0


def test_save_and_reload_round_trip(concat, golden, tmp_path):
    tok = load_tokenizer(concat.save_pretrained(tmp_path / "uvit.safetensors"))
    assert tok.config == concat.config
    t = torch.tensor(500)
    with torch.no_grad():
        assert torch.equal(tok.decoder(golden["denoiser.noised"], t, golden["quant"]),
                           concat.decoder(golden["denoiser.noised"], t, golden["quant"]))


def test_decoder_rejects_sizes_it_cannot_reach(concat, golden):
    with pytest.raises(ValueError, match="divisible by 8"):
        concat.decoder(torch.zeros(1, 3, 36, 36), torch.tensor(0), golden["quant"][:1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_decode_runs_and_stays_close(concat, golden, dtype):
    ref = concat.decode(golden["tokens"], steps=2, scheduler="ddim", seed=0)
    out = copy.deepcopy(concat).to(dtype).decode(golden["tokens"], steps=2, scheduler="ddim", seed=0)
    assert out.dtype == torch.float32 and (out - ref).abs().mean().item() < 0.02
