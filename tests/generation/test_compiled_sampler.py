"""A MaskGIT / ROAR step compiles into one graph (`fullgraph=True`, static shapes) and gives the eager tokens."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
import torch._dynamo.config as dynamo_config
from torch._dynamo.testing import CompileCounter

from open4m.errors import ConfigError
from open4m.generation import Sampler, build_schedule
from open4m.model import FourM

from spread_model import spread_tiny_model


@pytest.fixture(scope="module")
def model() -> FourM:
    return spread_tiny_model(depth=1)


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test traces from scratch, without the data-dependent-shape capture `compile_model` switches on:
    the step must need neither."""
    torch._dynamo.reset()
    with dynamo_config.patch(capture_scalar_outputs=False, capture_dynamic_output_shape_ops=False):
        yield
    torch._dynamo.reset()


def generate(model, conds, schedule, compile, seed=0):
    out = Sampler(model, compile=compile).generate(conds, schedule, generator=torch.Generator().manual_seed(seed))
    return {t: out[t]["tensor"] for t in schedule.targets}


CASES = {
    "maskgit greedy": ("rgb@224->tok_depth@224", dict(steps=3, temps=0.0)),
    "maskgit seeded, top-k/top-p, temperature and guidance schedules": (
        "rgb@224->tok_depth@224",
        dict(steps=3, temps=2.0, temp_schedules="linear", top_k=40, top_p=0.9, cfg=3.0, cfg_schedules="linear")),
    "roar, multi-condition guidance": (
        "rgb@224,caption->tok_depth@224", dict(schemes="roar", steps=2, temps=1.0, cfg=[(2.0, -0.5)])),
    "chained targets": ("rgb@224->tok_depth@224->tok_normal@224", dict(steps=2, temps=0.0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_steps_give_the_eager_tokens(model, rgb, case):
    spec, options = CASES[case]
    schedule = build_schedule(spec, **options)
    conds = {"rgb@224": rgb, "caption": torch.tensor([[101, 2023, 2003, 3]] * 2)}
    conds = {n: v for n, v in conds.items() if n in schedule.conditions}
    # The "eager" backend runs exactly what TorchDynamo traced; fullgraph=True raises at any graph break.
    compiled, eager = generate(model, conds, schedule, "eager"), generate(model, conds, schedule, False)
    for target in schedule.targets:
        assert torch.equal(compiled[target], eager[target]), target


def test_one_graph_serves_every_step_of_a_schedule(model, rgb):
    """Temperatures, guidance scales and the shrinking set of open positions change every step; the graph does not."""
    counter = CompileCounter()
    schedule = build_schedule("rgb@224->tok_depth@224", steps=4, temps=1.5, temp_schedules="linear")
    generate(model, {"rgb@224": rgb}, schedule, counter)
    assert counter.frame_count == 1  # one trace for 4 steps, no recompiles, no breaks
    guided = build_schedule("rgb@224->tok_depth@224", steps=3, temps=1.0, cfg=2.5, cfg_schedules="cosine")
    generate(model, {"rgb@224": rgb}, guided, counter)
    # One more graph for the two stacked passes; the first guided step runs eagerly (its unconditional
    # pass has no visible token, see CompiledStep.covers).
    assert counter.frame_count == 2


def test_past_the_recompile_limit_new_shapes_run_eagerly(model, rgb, caplog):
    """fullgraph=True makes one graph too many an error; the sampler runs that step eagerly instead."""
    schedule = build_schedule("rgb@224->tok_depth@224", steps=2, temps=0.0)
    sampler = Sampler(model, compile="eager")
    with dynamo_config.patch(recompile_limit=1):
        sampler.generate({"rgb@224": rgb}, schedule)  # batch 2: the one graph allowed
        one = sampler.generate({"rgb@224": rgb[:1]}, schedule)["tok_depth@224"]["tensor"]  # batch 1: a new shape
    assert sampler.compiled.limit_hit and "recompile limit" in caplog.text
    assert torch.equal(one, generate(model, {"rgb@224": rgb[:1]}, schedule, False)["tok_depth@224"])


def test_compile_option_is_checked_and_reaches_the_cli(model):
    from open4m.cli import build_parser

    with pytest.raises(ConfigError, match="compile=3"):
        Sampler(model, compile=3)
    assert Sampler(model).compiled is None and Sampler(model, compile=True).compiled.backend == "inductor"
    argv = ["generate", "--model", "m.safetensors", "--input", "rgb=a.png", "--target", "depth", "--out", "o"]
    assert build_parser().parse_args([*argv, "--compile"]).compile and not build_parser().parse_args(argv).compile


@pytest.mark.slow
def test_inductor_compiled_steps_give_the_eager_tokens(model, rgb):
    """The real compiler (C++ kernels through gcc; about a minute on 2 cores)."""
    for options in (dict(steps=4, temps=0.0), dict(steps=4, temps=1.0, top_p=0.9, cfg=2.0)):
        schedule = build_schedule("rgb@224->tok_depth@224", **options)
        compiled = generate(model, {"rgb@224": rgb}, schedule, True)["tok_depth@224"]
        assert torch.equal(compiled, generate(model, {"rgb@224": rgb}, schedule, False)["tok_depth@224"])
