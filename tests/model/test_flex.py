"""The `flex` attention backend (FlexAttention block masks) computes what `sdpa` (additive masks) does.

PyTorch 2.13 runs FlexAttention's forward on the CPU (unfused) but refuses its backward there by a
device check, although its reference (math) backward runs on any device. The gradient tests lift
that check (`cpu_flex_backward`) to compare gradients through the reference backward; the fused
CUDA kernels themselves are not exercised on the CPU.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.attention.flex_attention as torch_flex
import torch.nn.functional as F

from fourm_batches import random_batch
from open4m.errors import ConfigError
from open4m.generation import GenerationSchedule, Sampler, ScheduleStep
from open4m.model import FourM, FourMConfig, compile_model
from open4m.model.flex import FlexMask, check_training_device
from open4m.ops import additive_mask

MODS = ["rgb@224", "tok_depth@224", "caption"]
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


@pytest.fixture
def cpu_flex_backward(monkeypatch):
    monkeypatch.setattr(torch_flex, "_validate_device", lambda *tensors: None)


def official_attention(q, k, v, attn_mask=None):
    """The reference implementation's attention: masked_fill(-max) + softmax (SDPA's signature).

    A fully blocked row averages the values uniformly and passes no gradient to its queries and
    keys. SDPA's own gradient there depends on the kernel it picks, so tests with such rows compare
    against this instead.
    """
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask < 0, -torch.finfo(scores.dtype).max)
    return scores.softmax(dim=-1) @ v


def _model(**arch) -> FourM:
    torch.manual_seed(0)
    return FourM(FourMConfig(domains_in=MODS, domains_out=MODS[1:], dim=64, encoder_depth=1, decoder_depth=1,
                             num_heads=2, **arch))


def _loss_and_grads(model: FourM, batch: dict, backend: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.set_attention_backend(backend)
    model.zero_grad(set_to_none=True)
    out = model(batch, 64, 48)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(a: tuple, b: tuple) -> None:
    torch.testing.assert_close(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for name, grad in b[1].items():
        torch.testing.assert_close(a[1][name], grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_flex_mask_with_a_fully_blocked_row(cpu_flex_backward):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 10, 16, generator=g).requires_grad_() for _ in range(3))
    blocked = torch.rand(2, 10, 10, generator=g) < 0.5
    blocked[0, 3] = True  # nothing to look at: SDPA averages all values uniformly, plain FlexAttention gives 0
    additive = additive_mask(blocked[:, None], q.dtype)
    got = FlexMask.from_blocked(blocked).attend(q, k, v)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, attn_mask=additive))
    torch.testing.assert_close(got[0, :, 3], v[0].mean(dim=1))
    expected = official_attention(q, k, v, additive)
    upstream = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, (q, k, v), upstream), torch.autograd.grad(expected, (q, k, v), upstream)):
        torch.testing.assert_close(a, b)


def test_key_padding_and_tiles_of_every_kind():
    """More queries than mask rows (key padding); FlexAttention's 128 x 128 tiles skipped, full and partial."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 2, 300, 8, generator=g)
    k, v = torch.randn(2, 2, 260, 8, generator=g), torch.randn(2, 2, 260, 8, generator=g)
    keys = torch.zeros(2, 1, 260, dtype=torch.bool)
    keys[0, 0, 200:] = True
    keys[1] = True  # a batch row with no key at all
    causal = (torch.arange(260)[None] > torch.arange(300)[:, None]).expand(2, -1, -1)
    for blocked, rows in ((keys, 300), (causal | keys, None)):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask(blocked[:, None], q.dtype))
        torch.testing.assert_close(FlexMask.from_blocked(blocked, rows).attend(q, k, v), expected)


@pytest.mark.parametrize("arch", [{}, {"decoder_causal_mask": True, "decoder_sep_mask": False}],
                         ids=["compressed-sep", "causal"])
def test_forward_loss_and_gradients_match_sdpa(cpu_flex_backward, arch):
    """Encoder padding, decoder padding and the decoder's compressed/causal and per-modality masks."""
    model = _model(**arch)
    batch = random_batch(MODS)
    batch["caption"]["input_mask"][1] = True  # row 1: fewer visible inputs than the budget -> encoder padding
    enc, dec = model.select_encoder_tokens(batch, 64), model.select_decoder_tokens(batch, 48)
    assert enc.blocked.any() and dec.blocked.any() and not dec.attn_blocked.all(dim=-1).any()
    _assert_same(_loss_and_grads(model, batch, "flex"), _loss_and_grads(model, batch, "sdpa"))


def test_fully_blocked_rows_match_sdpa_forward_and_the_official_gradients(cpu_flex_backward, monkeypatch):
    """Row 0 has no visible input (every encoder and cross-attention key is padding); in row 1 the depth
    targets form one group counted at its last position, so the queries before it see nothing.

    In float64: row 0's encoder tokens are all zeros, and LayerNorm's backward at a zero-variance
    input scales by 1/sqrt(eps), which in float32 leaves only rounding noise to compare.
    """
    model = _model().double()
    batch = random_batch(MODS)
    batch["rgb@224"]["tensor"] = batch["rgb@224"]["tensor"].double()
    for name in MODS:
        batch[name]["input_mask"][0] = True
    depth = batch["tok_depth@224"]
    targets = (~depth["target_mask"][1]).nonzero()[:, 0]
    depth["decoder_attention_mask"][1] = 0
    depth["decoder_attention_mask"][1, targets[-1]] = len(targets)
    assert model.select_encoder_tokens(batch, 64).blocked[0].all()
    assert model.select_decoder_tokens(batch, 48).attn_blocked[1].all(dim=-1).any()
    flex = _loss_and_grads(model, batch, "flex")
    torch.testing.assert_close(flex[0], _loss_and_grads(model, batch, "sdpa")[0])
    monkeypatch.setattr(F, "scaled_dot_product_attention", official_attention)
    _assert_same(flex, _loss_and_grads(model, batch, "sdpa"))


@pytest.mark.slow  # about 10 s of tracing
def test_compiled_flex_model_is_one_graph_with_the_eager_loss_and_gradients(cpu_flex_backward):
    """The block masks are built inside the compiled forward without breaking the graph.

    The "eager" backend runs what TorchDynamo traced (any break raises under fullgraph=True);
    Inductor's CPU FlexAttention template cannot lower masks that read tensors computed in the
    graph (PyTorch 2.13), so generated kernels are for CUDA.
    """
    model = _model()
    batch = random_batch(MODS)
    eager = _loss_and_grads(model, batch, "flex")
    model.zero_grad(set_to_none=True)
    out = compile_model(model, fullgraph=True, backend="eager")(batch, 64, 48)
    out.loss.backward()
    _assert_same((out.loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}), eager)


def test_guided_maskgit_and_cached_captioning_give_the_same_tokens():
    """Guidance on the only condition leaves an unconditional pass with no visible input (fully
    blocked rows, contexts padded); the caption decodes through the KV cache, which keeps SDPA."""
    model = _model().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)  # spread the logits: random init is full of near-ties
    rgb = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    steps = (ScheduleStep("tok_depth@224", "maskgit", 196, 0.0, cfg_scale=3.0, cfg_conditions=("rgb@224",)),
             ScheduleStep("caption", "autoregressive", 12, 0.0))
    schedule = GenerationSchedule(("rgb@224",), steps)
    outputs = {}
    for backend in ("sdpa", "flex"):
        model.set_attention_backend(backend)
        outputs[backend] = Sampler(model).generate({"rgb@224": rgb}, schedule)
    for name in ("tok_depth@224", "caption"):
        assert torch.equal(outputs["flex"][name]["tensor"], outputs["sdpa"][name]["tensor"]), name


def test_backend_names_and_devices_are_checked():
    with pytest.raises(ConfigError, match="unknown attention backend 'xformers'.*sdpa, flex"):
        _model().set_attention_backend("xformers")
    with pytest.raises(ConfigError, match="unknown attention backend"):
        FourM(FourMConfig(domains_in=MODS, domains_out=MODS[1:], dim=32, encoder_depth=1, decoder_depth=1,
                          num_heads=2), attention="Flex")
    with pytest.raises(ConfigError, match="flex cannot train on cpu.*attention=sdpa"):
        check_training_device("flex", torch.device("cpu"))
    check_training_device("flex", torch.device("cuda"))
    check_training_device("sdpa", torch.device("cpu"))


def _recipe(attention: str):
    from open4m.train.tasks.fourm import load_recipe

    return load_recipe(None, [f"model.attention={attention}", "data.modalities=[tok_rgb@224,caption]",
                              "model.arch={dim: 32, encoder_depth: 1, decoder_depth: 1, num_heads: 2}"])


def test_recipe_option_reaches_the_model_and_not_the_checkpoint(tmp_path):
    from open4m.train.tasks.fourm import FourMTask, build_model

    recipe = _recipe("flex")
    d = recipe.data
    model, report = build_model(recipe.model, d.modalities, d.image_size)
    assert model.attention == "flex" and "flex attention" in report
    assert "attention" not in model.config.to_dict()  # a runtime choice: configs and checkpoints never record it
    reloaded = FourM.from_pretrained(model.save_file(tmp_path / "m.safetensors"))
    assert reloaded.attention == "sdpa"
    with pytest.raises(ConfigError, match="unknown attention backend 'fast'"):
        build_model(_recipe("fast").model, d.modalities, d.image_size)

    class CpuInfo:
        device, enabled = torch.device("cpu"), False

    with pytest.raises(ConfigError, match="flex cannot train on cpu"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FourMTask(recipe).setup(CpuInfo())
