"""The official DiVAE decoder (patched ADM UNet) against the reference golden files, and its sizing rules."""

import copy

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from open4m.tokenizers import DiVAE, DiVAEConfig, load_tokenizer
from open4m.tokenizers.diffusion import make_scheduler, shifted_cosine_alphas_cumprod
from open4m.tokenizers.unet import UNET_PRESETS, PatchedUNet, UNetSize, infer_unet_size

FIXTURE = "divae_rgb_tiny"


@pytest.fixture
def official(reference):
    return load_tokenizer(reference / f"{FIXTURE}.safetensors"), load_file(str(reference / f"{FIXTURE}_golden.safetensors"))


def _read(reference):
    with safe_open(str(reference / f"{FIXTURE}.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def test_tokens_and_latent_match_exactly(official):
    tok, golden = official
    assert isinstance(tok, DiVAE) and tok.decoder.size == UNET_PRESETS["unet_patched_t"]
    assert torch.equal(tok.encode(golden["input"]), golden["tokens"])
    assert torch.allclose(tok.tokens_to_latent(golden["tokens"]), golden["quant"], atol=1e-6)


@pytest.mark.parametrize("t", [0, 500, 999])
def test_denoiser_output_matches(official, t):
    tok, golden = official
    out = tok.decoder(golden["denoiser.noised"], torch.tensor(t), golden["quant"])
    assert (out - golden[f"denoiser.t{t}"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("golden_key, options", [
    ("decode.ddim10", dict(scheduler="ddim")),
    # The official DDPM scheduler always spaces its steps 'leading' (see open4m.tokenizers.diffusion).
    ("decode.ddpm10", dict(scheduler="ddpm", spacing="leading")),
    ("decode.default10", dict(spacing="leading")),  # the checkpoint's own scheduler: ddpm
])
def test_ten_step_decodes_match(official, golden_key, options):
    tok, golden = official
    out = tok.decode(golden["tokens"], steps=10, generator=torch.Generator().manual_seed(0), **options)
    assert (out - golden[golden_key]).abs().max().item() < 1e-3


def test_official_defaults_fill_keys_the_metadata_leaves_out(official):
    tok, _ = official
    c = tok.config
    assert (c.scheduler, c.beta_schedule, c.prediction_type, c.thresholding, c.clip_sample) == (
        "ddpm", "linear", "sample", True, True)


def test_an_unknown_decoder_name_is_sized_from_the_checkpoint(reference, tmp_path, official):
    state, meta = _read(reference)
    meta["dec_type"] = "unet_patched_community"
    save_file(state, str(tmp_path / "community.safetensors"), metadata=meta)
    tok = load_tokenizer(tmp_path / "community.safetensors")
    assert tok.decoder.size == UNET_PRESETS["unet_patched_t"]
    golden = official[1]
    out = tok.decoder(golden["denoiser.noised"], torch.tensor(500), golden["quant"])
    assert (out - golden["denoiser.t500"]).abs().max().item() < 1e-4
    # The inferred sizes are written into the config, so a re-save needs no inference.
    tok.save_pretrained(tmp_path / "resaved")
    assert load_tokenizer(tmp_path / "resaved").decoder.size == tok.decoder.size


@pytest.mark.parametrize("size", [
    UNetSize(32, 1, (1, 2), (2,), patch_size=2),
    UNetSize(64, 2, (1, 1, 2), (1, 4), patch_size=4, use_scale_shift_norm=True),
])
def test_size_inference_round_trips(size):
    net = PatchedUNet(image_channels=1, cond_channels=8, size=size)
    state = {f"decoder.{k}": v for k, v in net.state_dict().items()}
    assert infer_unet_size(state, image_channels=1, cond_channels=8) == size


def test_explicit_fields_override_the_preset():
    cfg = DiVAEConfig(image_size=32, n_channels=3, enc_type="vit_t_enc", patch_size=8, codebook_size=64, latent_dim=8,
                      dec_type="unet_patched_t", dec_num_res_blocks=1, dec_channel_mult=(1, 2))
    size = DiVAE(cfg).decoder.size
    assert (size.model_channels, size.num_res_blocks, size.channel_mult) == (32, 1, (1, 2))


def test_an_unknown_name_without_checkpoint_names_the_missing_fields():
    cfg = DiVAEConfig(image_size=32, enc_type="vit_t_enc", patch_size=8, codebook_size=64, latent_dim=8,
                      dec_type="unet_mine", dec_channels=32)
    with pytest.raises(ValueError, match="dec_num_res_blocks, dec_channel_mult, dec_attention_resolutions"):
        DiVAE(cfg)


def test_an_unknown_family_is_a_clear_error():
    base = dict(image_size=32, enc_type="vit_t_enc", patch_size=8, codebook_size=64, latent_dim=8)
    with pytest.raises(ValueError, match="unknown DiVAE dec_type"):
        DiVAE(DiVAEConfig(dec_type="vit_b_dec", **base))


def test_decoder_rejects_sizes_it_cannot_patch(official):
    tok, golden = official
    with pytest.raises(ValueError, match="divisible by 32"):
        tok.decoder(torch.zeros(1, 3, 48, 48), torch.tensor(0), golden["quant"][:1])


def test_shifted_cosine_schedule():
    alphas = shifted_cosine_alphas_cumprod(1000, 0.5)
    assert alphas[-1] == 0 and alphas[0] > 0.999 and bool((alphas[1:] <= alphas[:-1]).all())
    sched = make_scheduler(kind="ddim", beta_schedule="shifted_cosine:0.5", prediction_type="v_prediction")
    assert torch.equal(sched.alphas_cumprod, alphas)
    # A larger shift is a noisier schedule.
    assert (shifted_cosine_alphas_cumprod(1000, 2.0)[1:-1] < alphas[1:-1]).all()
    with pytest.raises(ValueError, match="shifted_cosine:<number>"):
        make_scheduler(kind="ddim", beta_schedule="shifted_cosine:abc")


def test_spacings_place_the_steps():
    ddpm = make_scheduler(kind="ddpm")
    ddpm.set_timesteps(4)
    assert ddpm.timesteps.tolist() == [999, 749, 499, 249]
    leading = make_scheduler(kind="ddpm", spacing="leading")
    leading.set_timesteps(4)
    assert leading.timesteps.tolist() == [750, 500, 250, 0]
    with pytest.raises(ValueError, match="spacing"):
        make_scheduler(kind="ddim", spacing="uniform")
    with pytest.raises(ValueError, match="epsilon"):
        make_scheduler(kind="ddim", prediction_type="epsilon")


def test_bf16_decode_runs_and_stays_close(official):
    tok, golden = official
    ref = tok.decode(golden["tokens"], steps=2, scheduler="ddim", seed=0)
    half = copy.deepcopy(tok).to(torch.bfloat16)
    out = half.decode(golden["tokens"], steps=2, scheduler="ddim", seed=0)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).abs().mean().item() < 0.05
