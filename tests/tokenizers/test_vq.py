import pytest
import torch
import torch.nn.functional as F

from open4m.tokenizers.vq import CosineVQ, Memcodes, codebook_stats


def test_cosine_vq_picks_nearest_code_by_angle():
    vq = CosineVQ(8, 16).eval()
    codes = vq.codebook.clone()
    x = (codes[[3, 7, 7, 0]] * torch.tensor([2.0, 0.5, 5.0, 1.0])[:, None]).t().reshape(1, 8, 2, 2)
    out = vq(x)
    assert out.indices.tolist() == [[[3, 7], [7, 0]]]
    # Inference returns the raw stored rows, not the (scaled) inputs.
    torch.testing.assert_close(out.quantized[0, :, 0, 0], codes[3])
    assert out.loss.item() == 0.0


def test_cosine_vq_ema_moves_codes_towards_assigned_latents_and_reports_loss():
    torch.manual_seed(0)
    vq = CosineVQ(4, 8, decay=0.5, threshold_dead_code=0.0).train()
    target = F.normalize(torch.randn(4), dim=0)
    x = target.view(1, 4, 1, 1).expand(2, 4, 3, 3).clone().requires_grad_(True)
    before = F.normalize(vq.codebook, dim=-1) @ target
    out = vq(x)
    idx = int(out.indices[0, 0, 0])
    after = F.normalize(vq.codebook, dim=-1) @ target
    assert after[idx] > before[idx]
    assert out.loss.item() > 0
    out.loss.backward()  # commitment loss reaches the encoder side
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cosine_vq_replaces_dead_codes_with_batch_latents():
    torch.manual_seed(0)
    vq = CosineVQ(4, 32, decay=0.9, threshold_dead_code=0.5).train()
    x = torch.randn(1, 4, 2, 2)
    vq(x)
    unit = F.normalize(x.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    sims = F.normalize(vq.codebook, dim=-1) @ unit.t()
    # Every code was dead (usage 0 < 0.5), so each now equals one of the 4 batch latents.
    assert torch.allclose(sims.max(1).values, torch.ones(32), atol=1e-5)


def test_cosine_vq_kmeans_init_and_multihead_roundtrip():
    torch.manual_seed(0)
    vq = CosineVQ(8, 4, heads=2, kmeans_init=True).train()
    assert vq._codebook.initted.item() == 0
    out = vq(torch.randn(2, 8, 3, 3))
    assert vq._codebook.initted.item() == 1
    assert out.indices.shape == (2, 2, 3, 3)
    vq.eval()
    out = vq(torch.randn(2, 8, 3, 3))
    torch.testing.assert_close(vq.indices_to_embedding(out.indices), out.quantized)


def test_codebook_stats():
    stats = codebook_stats(torch.tensor([0, 1, 2, 3]), 8)
    assert stats.usage == pytest.approx(0.5)
    assert stats.perplexity == pytest.approx(4.0)
    assert codebook_stats(torch.zeros(10, dtype=torch.long), 8).perplexity == pytest.approx(1.0)


def test_memcodes_eval_is_argmax_and_lookup_matches():
    torch.manual_seed(0)
    mc = Memcodes(16, 32, heads=4).eval()
    x = torch.randn(3, 16, 1, 1)
    out = mc(x)
    assert out.indices.shape == (3, 4, 1, 1)
    torch.testing.assert_close(mc.indices_to_embedding(out.indices), out.quantized)


def test_memcodes_training_is_differentiable():
    torch.manual_seed(0)
    mc = Memcodes(8, 16, heads=2).train()
    x = torch.randn(2, 8, 2, 2, requires_grad=True)
    mc(x).quantized.sum().backward()
    assert x.grad is not None and mc.codes.grad is not None and mc.to_k.weight.grad is not None


@pytest.mark.parametrize("bad", [torch.tensor([[[16]]]), torch.tensor([[[-1]]])])
def test_out_of_range_ids_are_rejected(bad):
    with pytest.raises(ValueError, match="token ids must lie"):
        CosineVQ(4, 16).indices_to_embedding(bad)


def test_wrong_latent_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(B, 8, h, w\)"):
        CosineVQ(8, 16)(torch.randn(2, 4, 3, 3))
