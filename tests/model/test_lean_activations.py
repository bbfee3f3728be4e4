"""Training keeps fewer activations for the backward pass, with the same results as the plain formulation."""

import copy

import pytest
import torch
import torch.nn.functional as F

import open4m.model.linear_cross_entropy as lce
from open4m.model.fourm import _gather
from open4m.model.layers import Linear, Mlp
from open4m.model.linear_cross_entropy import linear_cross_entropy


def _saved_bytes(fn, params=()):
    """Bytes of the distinct storages autograd keeps for the backward pass of ``fn()``, other than ``params``
    (keeping a parameter costs no memory)."""
    seen, own = {}, {p.untyped_storage().data_ptr() for p in params}

    def pack(t):
        if t.untyped_storage().data_ptr() not in own:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def _plain_mlp(mlp, x):
    h = mlp.act(F.linear(x, mlp.fc1.weight, mlp.fc1.bias))
    if mlp.fc3 is not None:
        h = h * F.linear(x, mlp.fc3.weight, mlp.fc3.bias)
    return F.linear(h, mlp.fc2.weight, mlp.fc2.bias)


@pytest.mark.parametrize("gated, act, bias", [(True, "SiLU", False), (False, "GELU", True)])
@pytest.mark.parametrize("bf16", [False, True])
def test_mlp_recomputes_its_activation_and_matches_the_plain_one(gated, act, bias, bf16):
    torch.manual_seed(0)
    mlp = Mlp(32, 96, act, gated, bias)
    x = torch.randn(3, 7, 32)
    results, saved = [], []
    for fused in (True, False):
        m, xx = copy.deepcopy(mlp), x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            # a non-leaf input, as in the model (autocast caches the casts of leaves: one shared bf16 copy)
            y, nbytes = _saved_bytes(lambda: m(xx * 1) if fused else _plain_mlp(m, xx * 1), list(m.parameters()))
        y.float().square().sum().backward()
        results.append([y.float(), xx.grad] + [p.grad for p in m.parameters()])
        saved.append(nbytes)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0 if bf16 else 1e-5, atol=0 if bf16 else 1e-5)
    assert saved[0] < saved[1]


def test_linear_under_autocast_keeps_no_low_precision_weight_copy():
    torch.manual_seed(0)
    layer = Linear(64, 48, bias=True)
    x = torch.randn(2, 5, 64, requires_grad=True)
    outs = []
    for ours in (True, False):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, nbytes = _saved_bytes(lambda: layer(x) if ours else F.linear(x, layer.weight, layer.bias),
                                     list(layer.parameters()))
        y.float().square().sum().backward()
        outs.append(([y, x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()], nbytes))
    for a, b in zip(outs[0][0], outs[1][0]):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert outs[0][1] <= outs[1][1] - 48 * 64 * 2  # autocast's saved bf16 weight copy is gone


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("rows_per_slice", [None, 5])
def test_chunked_head_loss_equals_cross_entropy_of_the_logits(bf16, rows_per_slice, monkeypatch):
    if rows_per_slice:
        monkeypatch.setattr(lce, "CHUNK_ELEMENTS", rows_per_slice * 300)
    torch.manual_seed(0)
    h = torch.randn(23, 16, requires_grad=True)
    w = torch.randn(300, 16, requires_grad=True)
    b = torch.randn(300, requires_grad=True)
    y = torch.randint(0, 300, (23,))
    grads = []
    for fused in (True, False):
        for t in (h, w, b):
            t.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if fused:
                loss, nbytes = _saved_bytes(lambda: linear_cross_entropy(h, w, b, y), (w, b))
            else:
                loss, nbytes = _saved_bytes(lambda: F.cross_entropy(F.linear(h, w, b).float(), y, reduction="sum"),
                                             (w, b))
        (0.5 * loss).backward()
        grads.append((loss.detach(), h.grad, w.grad, b.grad, nbytes))
    ours, plain = grads
    torch.testing.assert_close(ours[0], plain[0], rtol=1e-5, atol=1e-3)
    exact = bf16 and rows_per_slice is None  # one slice under autocast: autocast's very products
    for a, c in zip(ours[1:4], plain[1:4]):
        torch.testing.assert_close(a, c, rtol=0 if exact else 2e-2, atol=0 if exact else 2e-2 * c.abs().max().item())
    assert ours[4] < plain[4]  # no (tokens x vocab) logits kept


def test_gather_keeps_only_indices_for_the_backward_pass():
    torch.manual_seed(0)
    t = torch.randn(3, 50, 8, requires_grad=True)
    idx = torch.stack([torch.randperm(50)[:6] for _ in range(3)])
    out, nbytes = _saved_bytes(lambda: _gather(t, idx))
    expected = torch.gather(t, 1, idx[..., None].expand(-1, -1, 8))
    assert torch.equal(out, expected)
    assert nbytes < t.numel() * 4  # torch.gather would keep all of `t`
    out.sum().backward()
    ref = torch.zeros_like(t).scatter_add_(1, idx[..., None].expand(-1, -1, 8), torch.ones(3, 6, 8))
    assert torch.equal(t.grad, ref)


def _official_attention(q, k, v, blocked):
    """The official formulation: masked_fill(-max) then softmax, materialised."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(blocked, -torch.finfo(scores.dtype).max)
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_short_attention_backward_equals_the_official_gradients(dtype):
    from open4m.model.layers import attend
    from open4m.ops import additive_mask, split_heads

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 12, 8, dtype=dtype) for _ in range(3))
    blocked = torch.zeros(2, 1, 12, 12, dtype=torch.bool)
    blocked[0, :, :, 9:] = True  # padded keys
    blocked[1] = torch.triu(torch.ones(12, 12, dtype=torch.bool), 1)  # causal
    blocked[1, :, 4] = True  # a query with nothing to look at: uniform average, no gradient to q or k
    grad_out = torch.randn(2, 3, 12, 8, dtype=dtype)
    results = []
    for ours in (True, False):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = (split_heads(attend(qq, kk, vv, additive_mask(blocked, dtype)), 3) if ours
               else _official_attention(qq, kk, vv, blocked))
        out.backward(grad_out)
        results.append((out, qq.grad, kk.grad, vv.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert results[0][1][1, :, 4].abs().max() == 0
