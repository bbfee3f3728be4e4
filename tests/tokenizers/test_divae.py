import pytest
import torch

from open4m.tokenizers import load_tokenizer
from open4m.tokenizers.config import DiVAEConfig
from open4m.tokenizers.divae import DiVAE


def tiny(**kw) -> DiVAE:
    cfg = dict(image_size=32, n_channels=3, enc_type="vit_t_enc", patch_size=8, codebook_size=64, latent_dim=8,
               dec_channels=16, dec_channel_mult=(1, 2))
    cfg.update(kw)
    torch.manual_seed(0)
    return DiVAE(DiVAEConfig(**cfg)).eval()


def test_decode_is_deterministic_given_a_seed():
    model = tiny()
    tokens = model.encode(torch.randn(2, 3, 32, 32))
    a = model.decode(tokens, steps=4, seed=3)
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, model.decode(tokens, steps=4, seed=3))
    assert not torch.equal(a, model.decode(tokens, steps=4, seed=4))
    assert model.decode(tokens, steps=2, seed=3, scheduler="ddpm").shape == a.shape


@pytest.mark.parametrize("prediction", ["v_prediction", "sample"])
def test_training_loss_backpropagates_to_encoder_and_decoder(prediction):
    model = tiny(prediction_type=prediction).train()
    loss, x0, q = model.training_loss(torch.randn(2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    (loss + q.loss).backward()
    assert x0.shape == (2, 3, 32, 32)
    assert model.encoder.proj.weight.grad is not None and model.decoder.conv_in.weight.grad is not None


def test_schedule_has_zero_terminal_snr():
    sched = tiny().scheduler()
    assert sched.alphas_cumprod[-1].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="epsilon"):
        tiny(prediction_type="epsilon").scheduler()


def test_save_and_load_picks_divae(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "d")
    again = load_tokenizer(tmp_path / "d")
    assert isinstance(again, DiVAE)
    tokens = model.encode(torch.randn(1, 3, 32, 32))
    assert torch.equal(again.decode(tokens, steps=2, seed=0), model.decode(tokens, steps=2, seed=0))


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="steps"):
        tiny().decode(torch.zeros(1, 4, 4, dtype=torch.long), steps=0)
    with pytest.raises(ValueError, match="class maps"):
        tiny(n_labels=4)
