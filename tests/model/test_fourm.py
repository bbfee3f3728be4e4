import pytest
import torch

from open4m import modalities
from open4m.modalities import Kind, Modality
from open4m.model import FourM, FourMConfig, LossOutput, preset

from fourm_batches import random_batch

SMALL = dict(dim=64, encoder_depth=2, decoder_depth=2, num_heads=2)
MODS = ["rgb@224", "tok_depth@224", "caption", "det"]


def tiny(**kw) -> FourM:
    torch.manual_seed(0)
    cfg = dict(domains_in=MODS, domains_out=MODS[1:], **SMALL)
    cfg.update(kw)
    return FourM(FourMConfig(**cfg))


@pytest.mark.parametrize("variant", ["gelu", "swiglu_nobias", "swiglu_qknorm_nobias"])
def test_variants_forward_backward(variant):
    cfg = preset(f"tiny-{variant}", domains_in=MODS, domains_out=MODS[1:], **SMALL)
    model = FourM(cfg)
    batch = random_batch(MODS)
    loss, per_mod = model(batch, 64, 48)
    assert set(per_mod) == {"tok_depth@224", "caption", "det"} and torch.isfinite(loss)
    loss.backward()
    assert model.encoder[0].attn.qkv.weight.grad is not None
    assert model.decoder_embeddings["caption"].to_logits.weight.grad is not None
    # Random init predicts close to uniform: loss ~ log(vocab).
    assert 8.0 < per_mod["tok_depth@224"].item() < 10.5


def test_presets_by_name():
    assert preset("fm_base_12e_12d_swiglu_nobias").mlp_hidden_dim == 2048
    assert preset("large-swiglu_nobias").mlp_hidden_dim == 2730
    assert preset("fm_xlarge_24e_24d_swiglu_nobias").mlp_hidden_dim == 5461
    with pytest.raises(ValueError, match="unknown FourM preset"):
        preset("fm_huge")


def test_unknown_config_key_names_closest():
    with pytest.raises(ValueError, match="did you mean 'encoder_depth'"):
        FourMConfig.from_dict({"encoder_dept": 3})
    with pytest.raises(KeyError, match="unknown modality"):
        FourMConfig(domains_in=["tok_dept@224"])


def test_shared_modality_embeddings_and_tied_tables():
    model = tiny()
    assert model.decoder_embeddings["caption"].mod_emb is model.encoder_embeddings["caption"].mod_emb
    dec = model.decoder_embeddings["caption"]
    assert dec.to_logits.weight is dec.token_emb.weight
    untied = tiny(share_modality_embeddings=False)
    assert untied.decoder_embeddings["caption"].mod_emb is not untied.encoder_embeddings["caption"].mod_emb


def test_decoder_attention_mask_semantics():
    model = tiny()
    # Image block of 3 targets, then a causal sequence of 3, then padding.
    compressed = torch.tensor([[3, 0, 0, 1, 1, 1, 0]])
    mod_ids = torch.tensor([[7, 7, 7, 9, 9, 9, 9]])
    blocked = model._decoder_attention(compressed, mod_ids)[0]
    allowed = ~blocked
    assert allowed[:3, :3].all() and not allowed[:3, 3:].any()  # image: bidirectional, own modality
    assert allowed[3, 3] and not allowed[3, 4] and allowed[5, 3:6].all()  # sequence: causal
    assert not allowed[3:, :3].any()  # no attention across modalities


def test_sequence_targets_are_causal():
    """Changing a later target token must not change earlier sequence logits."""
    model = tiny().eval()
    batch = random_batch(MODS, seed=1)
    ref = model(batch, 64, 48, return_logits=True)["caption"]
    batch["caption"]["tensor"][:, -1] = 7
    again = model(batch, 64, 48, return_logits=True)["caption"]
    dec = model.select_decoder_tokens(batch, 48)
    cap = dec.mod_ids == model.modality_info["caption"].id
    # every caption query except the last one sees only tokens before the changed one
    for b in range(2):
        idx = cap[b].nonzero().flatten()[:-1]
        torch.testing.assert_close(ref[b, idx], again[b, idx])


def test_loss_types_and_empty_modality():
    model = tiny()
    batch = random_batch(MODS)
    batch["det"]["target_mask"][:] = True  # det has no targets in this batch
    batch["det"]["decoder_attention_mask"][:] = 0
    out = model(batch, 64, 48)
    loss, per_mod = out  # unpacks like the official (loss, per-modality losses)
    assert isinstance(out, LossOutput) and out[0] is loss and out[1] is per_mod
    # presence is explicit: the count of predicted target tokens, a tensor on the model's device
    counts = {name: int(n) for name, n in out.num_targets.items()}
    assert counts["det"] == 0 and counts["tok_depth@224"] > 0 and counts["caption"] > 0
    assert sum(counts.values()) <= 48 * len(batch["det"]["tensor"])  # over the whole batch
    assert per_mod["det"].item() == 0.0
    # 'mod' averages over modalities that have targets (the reference counted det as a zero)
    assert loss.item() == pytest.approx((per_mod["tok_depth@224"] + per_mod["caption"]).item() / 2, rel=1e-6)
    token = model(batch, 64, 48, loss_type="token")
    expected = sum(token.per_modality[n] * token.num_targets[n] for n in counts) / sum(counts.values())
    assert token.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()  # the empty head stays in the graph


def test_register_tokens_and_act_checkpointing_give_same_loss():
    model = tiny(num_register_tokens=2)
    batch = random_batch(MODS)
    loss_a, _ = model(batch, 64, 48)
    model.set_activation_checkpointing(True)
    loss_b, _ = model(batch, 64, 48)
    assert loss_a.item() == pytest.approx(loss_b.item(), abs=1e-6)
    loss_b.backward()
    assert model.register_tokens.grad is not None


def test_shuffled_decoder_order_is_reproducible():
    model = tiny(decoder_sep_mask=False)
    batch = random_batch(MODS)
    a = model(batch, 64, 48, shuffle_decoder_modalities=True, generator=torch.Generator().manual_seed(3))
    b = model(batch, 64, 48, shuffle_decoder_modalities=True, generator=torch.Generator().manual_seed(3))
    assert a[0].item() == b[0].item()


def test_sequence_embedding_input():
    mods = ["t5_caption", "tok_depth@224"]
    model = FourM(FourMConfig(domains_in=mods, domains_out=["tok_depth@224"], **SMALL))
    loss, _ = model(random_batch(mods), 32, 32)
    assert torch.isfinite(loss)


def test_user_registered_modality():
    thermal = Modality("tok_thermal@224", Kind.IMAGE_TOKENS, vocab_size=512, image_size=224, patch_size=16,
                       encoder=True, decoder=True)
    modalities.register(thermal)
    try:
        mods = ["rgb@224", "tok_thermal@224"]
        model = FourM(FourMConfig(domains_in=mods, domains_out=["tok_thermal@224"], **SMALL))
        loss, per_mod = model(random_batch(mods), 32, 32)
        assert per_mod["tok_thermal@224"].item() == pytest.approx(torch.log(torch.tensor(512.0)).item(), abs=1.0)
    finally:
        modalities.unregister("tok_thermal@224")


def test_bad_batches_are_explained():
    model = tiny()
    batch = random_batch(MODS)
    with pytest.raises(ValueError, match="no embedding for modality"):
        model({**batch, "tok_normal@224": batch["tok_depth@224"]}, 64, 48)
    bad = random_batch(MODS)
    bad["tok_depth@224"]["tensor"][0, 0] = 99999
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 8192\)"):
        model(bad, 64, 48)
    wrong_size = random_batch(MODS)
    wrong_size["rgb@224"]["tensor"] = torch.randn(2, 3, 128, 128)
    with pytest.raises(ValueError, match="rgb@224"):
        model(wrong_size, 64, 48)
    with pytest.raises(ValueError, match="loss_type"):
        model(batch, 64, 48, loss_type="focal")


def test_no_weight_decay_groups():
    model = tiny()
    skip = model.no_weight_decay()
    assert "encoder.0.attn.qkv.weight" not in skip
    assert "encoder.0.norm1.weight" in skip and "mask_token" in skip
    assert "encoder_embeddings.caption.token_emb.weight" in skip
