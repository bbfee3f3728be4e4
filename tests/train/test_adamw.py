"""open4m's AdamW: torch's update with fp32 moments, bf16 moments, stepping inside the backward pass."""

import copy

import pytest
import torch

import open4m.train.adamw as adamw_module
from open4m.errors import ConfigError
from open4m.train.adamw import AdamW, StepInBackward

HYPER = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 40), torch.nn.GELU(), torch.nn.Linear(40, 5))


def _train(net, make_opt, steps=8, in_backward=False, accum=1):
    torch.manual_seed(1)
    data = [(torch.randn(6, 16), torch.randint(0, 5, (6,))) for _ in range(steps * accum)]
    opt = make_opt(net.parameters())
    stepper = StepInBackward(opt) if in_backward else None
    norms = []
    for step in range(steps):
        for micro in range(accum):
            x, y = data[step * accum + micro]
            loss = torch.nn.functional.cross_entropy(net(x), y) / accum
            if stepper is not None and micro == accum - 1:
                stepper.arm()
            loss.backward()
        if stepper is not None:
            norms.append(stepper.finish())
            assert all(p.grad is None for p in net.parameters())  # freed as they were applied
        else:
            norms.append(torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf")))
            opt.step()
            opt.zero_grad(set_to_none=True)
    return torch.cat([p.detach().flatten() for p in net.parameters()]), torch.stack(norms)


def test_fp32_moments_are_torchs_adamw():
    ref, _ = _train(_net(), lambda ps: torch.optim.AdamW(ps, **HYPER))
    ours, _ = _train(_net(), lambda ps: AdamW(ps, **HYPER))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("state_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("accum", [1, 3])
def test_stepping_inside_backward_equals_stepping_after(state_dtype, accum):
    after, norms_after = _train(_net(), lambda ps: AdamW(ps, **HYPER, state_dtype=state_dtype), accum=accum)
    inside, norms_inside = _train(_net(), lambda ps: AdamW(ps, **HYPER, state_dtype=state_dtype), accum=accum,
                                  in_backward=True)
    torch.testing.assert_close(inside, after, rtol=0, atol=1e-6)
    torch.testing.assert_close(norms_inside, norms_after, rtol=1e-5, atol=1e-6)


def test_bf16_moments_halve_the_state_and_track_fp32():
    net = _net()
    opt = AdamW(net.parameters(), **HYPER, state_dtype=torch.bfloat16)
    assert all(s["exp_avg"].dtype == s["exp_avg_sq"].dtype == torch.bfloat16 for s in opt.state.values())
    start = torch.cat([p.detach().flatten() for p in _net().parameters()])
    fp32, _ = _train(_net(), lambda ps: AdamW(ps, **HYPER))
    bf16, _ = _train(_net(), lambda ps: AdamW(ps, **HYPER, state_dtype=torch.bfloat16))
    moved = (fp32 - start).abs().max()
    assert (bf16 - fp32).abs().max() < 0.05 * moved  # the same trajectory, up to bf16 rounding of the moments


def test_bf16_moments_refuse_a_second_beta_they_cannot_resolve():
    with pytest.raises(ConfigError, match=r"betas\[1\] <= 0.99.*state_dtype: fp32"):
        AdamW(_net().parameters(), lr=1e-3, betas=(0.9, 0.999), state_dtype=torch.bfloat16)


@pytest.mark.parametrize("state_dtype", [torch.float32, torch.bfloat16])
def test_row_sparse_gradients_update_like_dense_ones(state_dtype, monkeypatch):
    monkeypatch.setattr(adamw_module, "_CHUNK", 3 * 8)  # several row slices per table
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 8)
    ids = torch.randint(0, 50, (5, 7))
    results = []
    for sparse in (False, True):
        emb = copy.deepcopy(table)
        emb.sparse = sparse
        opt = AdamW(emb.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0, state_dtype=state_dtype)
        stepper = StepInBackward(opt)
        for i in range(5):
            stepper.arm()
            emb(ids[i]).pow(2).sum().backward()
            stepper.finish()
        results.append(emb.weight.detach())
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


def test_state_dicts_move_between_torch_and_open4m_and_between_storages():
    net = _net()
    torch_opt = torch.optim.AdamW(net.parameters(), **HYPER)
    _step(net, torch_opt)
    ours = AdamW(net.parameters(), **HYPER, state_dtype=torch.bfloat16)
    ours.load_state_dict(torch_opt.state_dict())
    for p in net.parameters():
        assert ours.state[p]["exp_avg"].dtype == torch.bfloat16
        torch.testing.assert_close(ours.state[p]["exp_avg"].float(), torch_opt.state[p]["exp_avg"], rtol=1e-2, atol=1e-6)
        assert float(ours.state[p]["step"]) == 1.0
    back = torch.optim.AdamW(net.parameters(), **HYPER)
    back.load_state_dict(ours.state_dict())
    _step(net, back)
    assert all(float(back.state[p]["step"]) == 2.0 for p in net.parameters())


def test_resuming_from_a_state_dict_continues_exactly():
    uninterrupted, _ = _train(_net(), lambda ps: AdamW(ps, **HYPER, state_dtype=torch.bfloat16), steps=6)
    net = _net()
    first = AdamW(net.parameters(), **HYPER, state_dtype=torch.bfloat16)
    torch.manual_seed(1)
    data = [(torch.randn(6, 16), torch.randint(0, 5, (6,))) for _ in range(6)]
    for x, y in data[:3]:
        _step(net, first, x, y)
    saved_net, saved_state = copy.deepcopy(net.state_dict()), copy.deepcopy(first.state_dict())
    net = _net()
    net.load_state_dict(saved_net)
    second = AdamW(net.parameters(), **HYPER, state_dtype=torch.bfloat16)
    second.load_state_dict(saved_state)
    for x, y in data[3:]:
        _step(net, second, x, y)
    torch.testing.assert_close(torch.cat([p.detach().flatten() for p in net.parameters()]), uninterrupted, rtol=0, atol=0)


def test_a_state_dict_of_another_layout_or_amsgrad_is_refused():
    net = _net()
    ours = AdamW(net.parameters(), **HYPER)
    other = torch.optim.AdamW(list(net.parameters())[:2], **HYPER)
    with pytest.raises(ValueError, match="different parameter layout"):
        ours.load_state_dict(other.state_dict())
    amsgrad = torch.optim.AdamW(net.parameters(), **HYPER, amsgrad=True)
    with pytest.raises(ValueError, match="amsgrad"):
        ours.load_state_dict(amsgrad.state_dict())


def _step(net, opt, x=None, y=None):
    torch.manual_seed(2)
    x = torch.randn(6, 16) if x is None else x
    y = torch.randint(0, 5, (6,)) if y is None else y
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def test_release_midway_hands_memory_back_once_per_stepping_backward(monkeypatch):
    calls = []
    monkeypatch.setattr(adamw_module, "release_free_memory", lambda: calls.append(1))
    net = _net()
    stepper = StepInBackward(AdamW(net.parameters(), **HYPER), release_midway=True)
    for armed in (True, False, True):
        if armed:
            stepper.arm(track_norm=False)
        torch.nn.functional.cross_entropy(net(torch.randn(6, 16)), torch.randint(0, 5, (6,))).backward()
        norm = stepper.finish()
        if armed:
            assert torch.isnan(norm)  # not summed when not asked for
        else:
            for p in net.parameters():  # not armed: gradients stay for an ordinary step
                assert p.grad is not None
                p.grad = None
    assert len(calls) == 2
