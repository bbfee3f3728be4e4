"""Generation schedules: official token/temperature numbers, the builder, and its errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from open4m.generation import (GenerationSchedule, ScheduleStep, build_schedule, guidance_schedule, temperature_schedule,
                               token_schedule)


def test_official_token_schedules():
    assert token_schedule("cosine", 8, 784) == [30, 85, 127, 150, 150, 127, 85, 30]
    assert token_schedule("linear", 25, 196) == [8] * 21 + [7] * 4
    assert token_schedule("linear", 49, 196) == [4] * 49
    assert token_schedule("linear", 1, 196) == [196]
    assert token_schedule("cosine", 1, 196) == [196]


@given(tokens=st.integers(1, 2000), data=st.data())
def test_linear_schedule_sums_and_descends(tokens, data):
    steps = data.draw(st.integers(1, tokens))
    counts = token_schedule("linear", steps, tokens)
    assert sum(counts) == tokens and len(counts) == steps
    assert counts == sorted(counts, reverse=True) and min(counts) >= 1


@given(tokens=st.integers(1, 2000), steps=st.integers(1, 64))
def test_cosine_schedule_sums_whenever_each_step_can_commit_a_token(tokens, steps):
    if steps > tokens:
        with pytest.raises(ValueError, match="steps <= "):
            token_schedule("cosine", steps, tokens)
        return
    counts = token_schedule("cosine", steps, tokens)
    assert sum(counts) == tokens and len(counts) == steps and min(counts) >= 1


def test_cosine_schedule_where_official_rounding_overshoots():
    # rounding each step alone gives [1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6, 5, 4, 3, 2, -1] (the official code
    # would commit -1 tokens); the running total is rounded instead, keeping the cosine shape
    counts = token_schedule("cosine", 16, 64)
    assert counts == [1, 1, 3, 4, 5, 6, 6, 6, 6, 6, 6, 5, 4, 3, 1, 1]


def test_official_temperature_schedules():
    counts = token_schedule("linear", 49, 196)
    onex = temperature_schedule("onex:0.5:0.5", 6.0, counts)
    assert [round(t, 2) for t in onex[:3]] == [5.89, 4.69, 3.97]
    assert onex[-1] == pytest.approx(0.5) and len(onex) == 49
    assert onex == sorted(onex, reverse=True)
    assert temperature_schedule("constant", 0.7, [4, 4]) == [0.7, 0.7]
    assert temperature_schedule("linear", 2.0, [2, 1, 1]) == pytest.approx([2.0, 1.0, 0.5])
    assert temperature_schedule("linear", 0.0, [1, 1]) == [1e-9, 1e-9]
    with pytest.raises(ValueError, match="onex"):
        temperature_schedule("onex:half:0.5", 1.0, [1])
    with pytest.raises(ValueError, match="unknown temperature schedule"):
        temperature_schedule("cosine", 1.0, [1])


def test_text_to_image_recipe():
    s = build_schedule(
        "caption->tok_clip@224->tok_rgb@224",
        schemes="roar", steps="49-25", temps="6.0-0.5", temp_schedules=["onex:0.5:0.5", "constant"],
        cfg=3.0, cfg_grow_conditioning=True, top_p=0.9,
    )
    assert isinstance(s, GenerationSchedule)
    assert s.conditions == ("caption",) and s.targets == ("tok_clip@224", "tok_rgb@224")
    clip, rgb = s.steps_for("tok_clip@224"), s.steps_for("tok_rgb@224")
    assert len(s) == 74 and len(clip) == 49 and len(rgb) == 25
    assert [st.num_tokens for st in rgb] == [8] * 21 + [7] * 4
    assert round(clip[0].temperature, 2) == 5.89 and rgb[0].temperature == 0.5
    assert clip[0].cfg_conditions == ("caption",)
    assert rgb[0].cfg_conditions == ("caption", "tok_clip@224")  # grown after clip finished
    assert all(st.top_p == 0.9 and st.guided for st in s)
    assert "tok_rgb@224: roar, 25 step(s)" in str(s)


def test_defaults_and_short_names():
    s = build_schedule("rgb->depth,normal,caption")
    assert s.conditions == ("rgb@224",)
    assert s.targets == ("tok_depth@224", "tok_normal@224", "caption")
    assert build_schedule("caption->rgb@224").targets == ("tok_rgb@224",)  # pixels are generated as tokens
    assert build_schedule("rgb->tok_depth").targets == ("tok_depth@224",)  # the model's resolution by default
    depth = s.steps_for("tok_depth@224")
    assert [st.scheme for st in depth] == ["maskgit"] * 8 and sum(st.num_tokens for st in depth) == 196
    (cap,) = s.steps_for("caption")
    assert cap.scheme == "autoregressive" and cap.num_tokens == 256
    assert not cap.guided
    small = build_schedule("rgb->tok_dinov2_global").steps
    assert sum(st.num_tokens for st in small) == 16 and all(st.num_tokens >= 1 for st in small)
    ar = build_schedule("rgb->caption", tokens=32, temps=0.3, steps=8, temp_schedules="linear")
    assert ar.steps == (ScheduleStep("caption", "autoregressive", 32, 0.3, cfg_conditions=("rgb@224",)),)


def test_per_target_options_and_guidance_weights():
    s = build_schedule("rgb,caption->depth", cfg=[(2.0, -1.0)], top_k="0.1")
    step = s.steps[0]
    assert step.cfg_scale == (2.0, -1.0) and step.top_k == 0.1 and step.guided
    assert build_schedule("rgb->depth", top_k="20").steps[0].top_k == 20
    assert build_schedule("rgb->depth", cfg="-1.5").steps[0].cfg_scale == -1.5
    unconditional = build_schedule("->tok_rgb@224", cfg=3.0)
    assert unconditional.conditions == () and not unconditional.steps[0].guided


def test_a_weight_may_name_a_target_drawn_before():
    """`caption->det->rgb` with the boxes weighted on the RGB step: the boxes join that step's guidance."""
    s = build_schedule("rgb,caption->depth->normal", cfg=[None, "depth=2,caption=0.5"], steps=[2, 2])
    depth, normal = s.steps_for("tok_depth@224"), s.steps_for("tok_normal@224")
    assert all(st.cfg_conditions == ("rgb@224", "caption") and not st.guided for st in depth)
    assert all(st.cfg_conditions == ("rgb@224", "caption", "tok_depth@224") for st in normal)
    assert all(st.cfg_scale == (1.0, 0.5, 2.0) for st in normal)
    # an earlier target no weight names stays out of the guidance (visible to every pass)
    plain = build_schedule("rgb->depth->normal", cfg=[None, "rgb=2"]).steps_for("tok_normal@224")
    assert plain[0].cfg_conditions == ("rgb@224",) and plain[0].cfg_scale == (2.0,)
    # weights per target on the command line's form; the demo preset does not switch on growing conditions
    cli = build_schedule("rgb->depth->normal", cfg="1-depth=3", preset="demo").steps_for("tok_normal@224")
    assert cli[0].cfg_conditions == ("rgb@224", "tok_depth@224") and cli[0].cfg_scale == (1.0, 3.0)


def test_guidance_schedules_fade_or_rise_over_the_steps():
    counts = [30, 85, 127, 150, 150, 127, 85, 30]
    assert guidance_schedule("constant", 3.0, counts) == [3.0] * 8
    linear = guidance_schedule("linear", 3.0, counts)
    cosine = guidance_schedule("cosine", 3.0, counts)
    rising = guidance_schedule("rising", 3.0, counts)
    for fading in (linear, cosine):
        assert fading[0] == 3.0 and all(a > b > 1.0 for a, b in zip(fading, fading[1:]))
    assert linear[4] == pytest.approx(2.0)  # half the tokens are still masked before step 5
    assert cosine[4] == pytest.approx(2.0) and cosine[1] > linear[1] and cosine[-1] < linear[-1]
    assert rising[-1] == pytest.approx(3.0) and rising[0] == pytest.approx(1 + 2 * 30 / 784)
    assert guidance_schedule("linear", 3.0, [196]) == [3.0]  # one step: the scale itself
    assert guidance_schedule("constant", (2.0, -0.5), [98, 98]) == [(2.0, -0.5)] * 2

    steps = build_schedule("rgb->depth->caption", cfg=2.5, cfg_schedules="cosine", steps=[4, None])
    scales = [s.cfg_scale for s in steps]
    assert scales[0] == 2.5 and scales[3] < scales[0] and scales[-1] == 2.5  # the caption: one step
    assert "cfg 2.5->" in str(steps)


@pytest.mark.parametrize(
    "spec,options,message",
    [
        ("rgb->caption", {"schemes": "maskgit"}, "decoded 'autoregressive'"),
        ("rgb->depth", {"schemes": "autoregressive"}, "not 'autoregressive'"),
        ("rgb->depth", {"schemes": "diffusion"}, "unknown decoding scheme"),
        ("rgb->depth", {"steps": 197}, "at most 196 steps"),
        ("rgb->depth", {"tokens": 500}, "at most 196 tokens"),
        ("rgb->depth", {"schemes": "roar", "token_schedules": "cosine"}, "linear"),
        ("rgb->depth", {"token_schedules": "exponential"}, "unknown token schedule"),
        ("rgb->depth", {"temps": -1.0}, "temperature"),
        ("rgb->depth", {"top_p": 1.5}, "top_p"),
        ("rgb->depth", {"top_k": 2.5}, "fraction"),
        ("rgb->depth", {"top_k": -3}, "top_k"),
        ("rgb->depth", {"cfg_schedules": "exponential"}, "unknown guidance schedule"),
        ("rgb,caption->depth", {"cfg": [(2.0, 0.5)], "cfg_schedules": "linear"}, "only take the 'constant'"),
        ("rgb->depth", {"cfg": [(1.0, 2.0)]}, "one weight per condition"),
        ("rgb->depth->normal", {"cfg": "normal=2"}, r"neither a condition nor a target drawn before it.*--cfg 1-normal=2"),
        ("rgb->depth->normal", {"cfg": [None, "caption=2"]}, r"the targets drawn before it are \['tok_depth@224'\]"),
        ("rgb->depth->normal", {"cfg": [(1.0,), (2.0,)], "cfg_grow_conditioning": True}, "cfg_grow_conditioning"),
        ("rgb->depth->normal", {"temps": "1.0-2.0-3.0"}, "3 values for 2 targets"),
        ("rgb->t5_caption", {}, "cannot be generated"),
        ("depth->depth", {}, "more than once"),
        ("rgb", {}, "conditions->target1"),
        ("rgb->", {}, "conditions->target1"),
        ("rgb->depth", {"model_modalities": ["rgb@224", "caption"]}, "does not know"),
        # each of these ran (or failed inside torch.multinomial) instead of being refused
        ("rgb->depth", {"steps": 2.7}, r"steps=2.7 is not understood; give a whole number"),
        ("rgb->depth", {"tokens": 10.5}, r"tokens=10.5 is not understood; give a whole number"),
        ("rgb->depth", {"cfg": "rgb=inf"}, "guidance weight inf is not finite"),
        ("rgb->depth", {"cfg": {"rgb": float("nan")}}, "guidance weight nan is not finite"),
        ("rgb->depth", {"cfg": "rgb=3,rgb=2"}, "rgb weighted more than once"),
        ("rgb->depth", {"cfg": {"rgb": 3, "rgb@224": 2}}, "'rgb' and 'rgb@224' both weight the condition rgb@224"),
        ("rgb->depth", {"temp_schedules": "onex:nan:0.5"}, "min_t must be a finite number >= 0"),
        ("rgb->depth", {"temp_schedules": "onex:inf:0.5"}, "min_t must be a finite number >= 0"),
        ("rgb->depth", {"temp_schedules": "onex:-1:0.5"}, "min_t must be a finite number >= 0"),
    ],
)
def test_invalid_schedules_say_why(spec, options, message):
    with pytest.raises(ValueError, match=message):
        build_schedule(spec, **options)


def test_unknown_modality_suggests_names():
    with pytest.raises(KeyError, match="Did you mean"):
        build_schedule("rgb->tok_depht@224")


def test_a_modality_the_model_lacks_names_its_own_variant():
    # the shipped world model calls its caption `world_caption`: asking it for `caption` says so
    has = ["rgb@224", "tok_depth@224", "tok_depth@224", "world_caption", "world_caption", "world_det"]
    with pytest.raises(ValueError) as err:
        build_schedule("depth->caption", model_modalities=has)
    message = str(err.value)
    assert "for 'caption' use 'world_caption'" in message and "\n" not in message
    assert message.endswith("it has rgb@224, tok_depth@224, world_caption, world_det")  # each name once


def test_steps_for_unknown_target():
    with pytest.raises(KeyError, match="not a target"):
        build_schedule("rgb->depth").steps_for("caption")
