"""Building blocks: the few-row Linear and the KV cache's rewind."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from open4m.model.layers import SMALL_ROWS, Attention, Linear, rewind_cache


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 16), (3, 5, 16), (2, SMALL_ROWS, 16), (0, 16)])
def test_linear_matches_f_linear_for_any_row_count(bias, shape):
    torch.manual_seed(0)
    layer = Linear(16, 24, bias=bias)
    x = torch.randn(*shape)
    out = layer(x)
    assert out.shape == (*shape[:-1], 24)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-6)


def test_linear_is_a_drop_in_nn_linear_with_gradients():
    layer = Linear(8, 4)
    assert isinstance(layer, torch.nn.Linear) and set(layer.state_dict()) == {"weight", "bias"}
    x = torch.randn(3, 8, requires_grad=True)
    layer(x).square().sum().backward()
    reference = torch.nn.Linear(8, 4)
    reference.load_state_dict(layer.state_dict())
    x2 = x.detach().clone().requires_grad_()
    reference(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad)


def test_rewinding_the_cache_drops_later_positions():
    attn = Attention(8, 2).eval()
    cache = {"capacity": 6}
    rewind_cache(cache, 0)  # nothing written yet: a no-op
    with torch.no_grad():
        attn(torch.randn(1, 4, 8), cache=cache)
        rewind_cache(cache, 2)
        assert cache["used"] == 2
        attn(torch.randn(1, 3, 8), cache=cache)
    assert cache["used"] == 5
    with pytest.raises(ValueError, match="cannot rewind"):
        rewind_cache(cache, 6)
