"""Row-sparse embedding gradients give exactly the dense gradients, and AdamW groups are right."""

import torch

from open4m.model import FourM, FourMConfig
from open4m.train.optim import SparseGradientDensifier, build_adamw, parameter_groups

from fourm_batches import random_batch  # tests/ helper (on sys.path through tests/conftest.py)

MODS = ["rgb@224", "tok_depth@224", "caption", "det"]


def _model():
    torch.manual_seed(0)
    return FourM(FourMConfig(domains_in=MODS, domains_out=MODS[1:], dim=64, encoder_depth=1, decoder_depth=1,
                             num_heads=2))


def test_sparse_embedding_gradients_equal_dense():
    model, batch = _model(), random_batch(MODS)
    model(batch, 64, 48)[0].backward()
    dense = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.set_sparse_embedding_gradients(True)
    densify = SparseGradientDensifier()
    for _ in range(2):  # second round reuses the persistent buffers
        model(batch, 64, 48)[0].backward()
        assert model.encoder_embeddings["caption"].token_emb.weight.grad.is_sparse
        densify(model)
        for name, p in model.named_parameters():
            if p.grad is not None:
                assert not p.grad.is_sparse
                torch.testing.assert_close(p.grad, dense[name], atol=1e-6, rtol=1e-5)
        model.zero_grad(set_to_none=True)


def test_adamw_groups_and_fused_step():
    model = _model()
    decay, no_decay = parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"])
    assert "encoder_embeddings.caption.token_emb.weight" in {names[id(p)] for p in no_decay["params"]}
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
    opt = build_adamw(parameter_groups(model, 0.05), lr=1e-3)
    model.set_sparse_embedding_gradients(True)
    before = model.encoder[0].attn.qkv.weight.detach().clone()
    model(random_batch(MODS), 64, 48)[0].backward()
    SparseGradientDensifier()(model)
    opt.step()
    assert not torch.equal(before, model.encoder[0].attn.qkv.weight)
