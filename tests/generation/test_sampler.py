"""The sampler: official parity, KV cache, batched guidance, multi-condition guidance, seeds, chaining."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from open4m.generation import GenerationSchedule, Sampler, ScheduleStep, blank, build_schedule
from open4m.generation.sampler import _cat_encoder_tokens
from open4m.model import FourM

from spread_model import spread_tiny_model


@pytest.fixture(scope="module")
def model() -> FourM:
    return spread_tiny_model(depth=2)


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------------
# Parity with the official sampler
# ------------------------------------------------------------------------------------------
def test_official_chained_generation_parity(reference_dir):
    from safetensors.torch import load_file

    model = FourM.from_pretrained(reference_dir / "fm7_tiny.safetensors")
    golden = load_file(str(reference_dir / "fm7_tiny_generation_golden.safetensors"))
    schedule = build_schedule("rgb@224->tok_depth@224->tok_normal@224->caption", steps=[1, 1, None],
                              tokens=[196, 196, 32], temps=0.0)
    assert all(s.temperature == 0.0 for s in schedule)  # constant 0 is greedy, not clipped to 1e-9
    out = Sampler(model).generate({"rgb@224": golden["input.rgb@224"]}, schedule)
    for name in ("tok_depth@224", "tok_normal@224", "caption"):
        expected = golden[f"output.{name}.tensor"]
        assert out[name]["tensor"].shape == expected.shape, name
        assert torch.equal(out[name]["tensor"], expected), name
    assert not out["caption"]["input_mask"].any() and out["caption"]["target_mask"].all()


# ------------------------------------------------------------------------------------------
# Reference implementations built from the model's public pieces (no caching, no batching)
# ------------------------------------------------------------------------------------------
def uncached_greedy(model: FourM, rgb: torch.Tensor, max_new: int) -> torch.Tensor:
    """Greedy caption decoding that re-decodes the whole prefix with a causal mask at every step."""
    sampler = Sampler(model)
    schedule = build_schedule("rgb@224->caption", tokens=max_new + 1, temps=0.0)
    mod_dict = sampler.prepare({"rgb@224": rgb}, schedule)
    context = model.encode(model.select_encoder_tokens(mod_dict))
    entry, module = mod_dict["caption"], model.decoder_embeddings["caption"]
    emb = module.embed(entry)[1][:, 1:]  # target ranks 0.. of positions 1..
    out = entry["tensor"][:, 1:2]
    for _ in range(max_new):
        n = out.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).triu(1).expand(out.shape[0], n, n)
        hidden = model.decode(module.token_emb(out) + emb[:, :n], context, causal)
        out = torch.cat([out, model.logits("caption", hidden[:, -1]).argmax(-1, keepdim=True)], dim=1)
    return out[:, 1:]


def test_kv_cached_autoregressive_equals_full_recompute(model, rgb):
    max_new = 12
    schedule = build_schedule("rgb@224->caption", tokens=max_new + 1, temps=0.0)
    out = Sampler(model).generate({"rgb@224": rgb}, schedule)
    expected = uncached_greedy(model, rgb, max_new)
    for row, ref in zip(out["caption"]["tensor"], expected):
        ref = ref.tolist()
        if 6 in ref:  # [S_2] ends the span and is not part of the caption
            ref = ref[:ref.index(6)]
        assert row[: len(ref)].tolist() == ref


@pytest.mark.parametrize("draft_tokens", [0, 8])
def test_token_scores_are_the_log_probabilities_of_the_generated_tokens(model, rgb, draft_tokens):
    """Scores read off the cached (and speculative) passes equal a teacher-forced full recompute."""
    max_new = 12
    schedule = build_schedule("rgb@224->caption", tokens=max_new + 1, temps=0.0)
    scores: dict = {}
    Sampler(model, draft_tokens=draft_tokens).generate({"rgb@224": rgb}, schedule, scores=scores)
    expected = uncached_greedy(model, rgb, max_new)
    sampler = Sampler(model)
    mod_dict = sampler.prepare({"rgb@224": rgb}, schedule)
    context = model.encode(model.select_encoder_tokens(mod_dict))
    entry, module = mod_dict["caption"], model.decoder_embeddings["caption"]
    fed = torch.cat([entry["tensor"][:, 1:2], expected[:, :-1]], dim=1)
    n = fed.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool).triu(1).expand(fed.shape[0], n, n)
    hidden = model.decode(module.token_emb(fed) + module.embed(entry)[1][:, 1:n + 1], context, causal)
    logprobs = model.logits("caption", hidden).float().log_softmax(-1)
    assert len(scores["caption"]) == rgb.shape[0]
    for row, ref, lp in zip(scores["caption"], expected.tolist(), logprobs):
        if 6 in ref:  # the row's end token closes its scores
            ref = ref[:ref.index(6) + 1]
        assert row.ids == ref and len(row.logprobs) == len(ref) == len(row.choices)
        want = lp[torch.arange(len(ref)), torch.tensor(ref)]
        torch.testing.assert_close(torch.tensor(row.logprobs), want, atol=1e-4, rtol=1e-4)
        for (best, best_lp), token, token_lp in zip((c[0] for c in row.choices), ref, row.logprobs):
            assert best == token and best_lp == pytest.approx(token_lp)  # greedy: the chosen token is the likeliest
        assert all(len(c) == 5 and [v for _, v in c] == sorted((v for _, v in c), reverse=True) for c in row.choices)


def guided_logits_two_passes(model: FourM, mod_dict: dict, target: str, uncond: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditional and unconditional logits over every masked position, one pass each."""
    out = []
    for d in (mod_dict, uncond):
        context = model.encode(model.select_encoder_tokens(d))
        emb = model.decoder_embeddings[target].embed(d[target])[1]
        out.append(model.logits(target, model.decode(model.mask_token + emb, context, None)))
    return out[0], out[1]


@pytest.mark.parametrize("guided", ["rgb@224", "caption"])
def test_batched_guidance_equals_two_separate_passes(model, rgb, guided):
    """Guiding on RGB leaves a near-empty unconditional pass (encoded alone, contexts padded);
    guiding on the caption keeps passes of similar length (encoded as one padded batch)."""
    scale = 3.0
    conds = {"rgb@224": rgb, "caption": torch.tensor([[101, 2023, 2003, 3]] * 2)}
    step = ScheduleStep("tok_depth@224", "maskgit", 196, 0.0, cfg_scale=scale, cfg_conditions=(guided,))
    schedule = GenerationSchedule(tuple(conds), (step,))
    sampler = Sampler(model)
    mod_dict = sampler.prepare(conds, schedule)
    uncond = {**mod_dict, guided: blank(guided, mod_dict[guided])}
    cond, unc = guided_logits_two_passes(model, mod_dict, "tok_depth@224", uncond)
    expected = (unc + (cond - unc) * scale).argmax(-1)
    out = sampler.generate(conds, schedule)
    assert torch.equal(out["tok_depth@224"]["tensor"], expected)
    unguided = sampler.generate(conds, GenerationSchedule(tuple(conds), (replace(step, cfg_scale=1.0),)))
    assert not torch.equal(unguided["tok_depth@224"]["tensor"], expected)


def test_padding_passes_to_one_batch_changes_nothing(model, rgb):
    """Stacking passes of different lengths pads the shorter one; its outputs must not move."""
    sampler = Sampler(model)
    schedule = build_schedule("rgb@224->tok_depth@224", steps=1)
    mod_dict = sampler.prepare({"rgb@224": rgb}, schedule)
    half = {**mod_dict, "rgb@224": {**mod_dict["rgb@224"]}}
    half["rgb@224"]["input_mask"] = torch.arange(196).expand(2, -1) >= 50
    long_, short = model.select_encoder_tokens(mod_dict), model.select_encoder_tokens(half)
    both = model.encode(_cat_encoder_tokens([long_, short])).context[2:, :50]
    alone = model.encode(short).context
    torch.testing.assert_close(both, alone, rtol=1e-5, atol=1e-5)


def test_multi_condition_guidance(model, rgb):
    caption = torch.tensor([[101, 2023, 2003, 3]] * 2)
    conds = {"rgb@224": rgb, "caption": caption}
    sampler = Sampler(model)
    weights = (2.0, -0.5)
    schedule = build_schedule("rgb@224,caption->tok_depth@224", steps=1, temps=0.0, cfg=[weights])
    out = sampler.generate(conds, schedule)["tok_depth@224"]["tensor"]
    # By hand: uncond has both conditions blanked; cond_i shows condition i only.
    md = sampler.prepare(conds, schedule)
    blank_rgb = {**md["rgb@224"], "input_mask": torch.ones_like(md["rgb@224"]["input_mask"])}
    blank_cap = {**md["caption"], "input_mask": torch.ones_like(md["caption"]["input_mask"])}
    blank_cap["tensor"] = md["caption"]["tensor"].clone()
    blank_cap["tensor"][:, 0] = 5
    blank_cap["input_mask"][:, 0] = False
    uncond = {**md, "rgb@224": blank_rgb, "caption": blank_cap}
    c_rgb, u = guided_logits_two_passes(model, {**uncond, "rgb@224": md["rgb@224"]}, "tok_depth@224", uncond)
    c_cap, _ = guided_logits_two_passes(model, {**uncond, "caption": md["caption"]}, "tok_depth@224", uncond)
    expected = (u + (c_rgb - u) * weights[0] + (c_cap - u) * weights[1]).argmax(-1)
    assert torch.equal(out, expected)
    # One weight per condition with a single condition is ordinary guidance.
    one = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224", steps=1, temps=0.0, cfg=[(2.0,)]))
    plain = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224", steps=1, temps=0.0, cfg=2.0))
    assert torch.equal(one["tok_depth@224"]["tensor"], plain["tok_depth@224"]["tensor"])


def test_weighting_an_earlier_target_is_drawing_it_first_then_guiding_on_it(model, rgb):
    """One chained call that weights a link of its chain draws what two calls draw on one random stream: the
    link, then the last target guided on the link given as a condition."""
    sampler = Sampler(model)
    weights = "rgb@224=0.5,tok_depth@224=2"

    def chained(last_weights: str) -> torch.Tensor:
        schedule = build_schedule("rgb@224->tok_depth@224->tok_normal@224", steps=2, cfg=[None, last_weights])
        out = sampler.generate({"rgb@224": rgb}, schedule, generator=torch.Generator().manual_seed(3))
        return out["tok_normal@224"]["tensor"]

    stream = torch.Generator().manual_seed(3)
    link = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224", steps=2), generator=stream)
    second = sampler.generate({"rgb@224": rgb, "tok_depth@224": link["tok_depth@224"]},
                              build_schedule("rgb@224,tok_depth@224->tok_normal@224", steps=2, cfg=weights),
                              generator=stream)
    assert torch.equal(chained(weights), second["tok_normal@224"]["tensor"])
    assert not torch.equal(chained("rgb@224=0.5"), second["tok_normal@224"]["tensor"])


# ------------------------------------------------------------------------------------------
# Schemes, seeds, chaining, batching
# ------------------------------------------------------------------------------------------
def test_seeds_reproduce_and_differ(model, rgb):
    schedule = build_schedule("rgb@224->tok_depth@224->caption", schemes=["roar", None], steps=[4, None],
                              tokens=[None, 10], temps=1.0, top_p=0.9)
    sampler = Sampler(model)

    def run(seed):
        out = sampler.generate({"rgb@224": rgb}, schedule, generator=torch.Generator().manual_seed(seed))
        return out["tok_depth@224"]["tensor"], out["caption"]["tensor"]

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("scheme,steps", [("maskgit", 8), ("roar", 5)])
def test_multi_step_schemes_fill_every_position(model, rgb, scheme, steps):
    schedule = build_schedule("rgb@224->tok_depth@224", schemes=scheme, steps=steps, temps=0.5)
    sampler = Sampler(model)
    mod_dict = sampler.prepare({"rgb@224": rgb}, schedule)
    committed = []
    for step in schedule:
        before = (~mod_dict["tok_depth@224"]["input_mask"]).sum(dim=1)
        sampler.step(mod_dict, step, torch.Generator().manual_seed(0))
        committed.append(((~mod_dict["tok_depth@224"]["input_mask"]).sum(dim=1) - before).tolist())
    assert committed == [[s.num_tokens] * 2 for s in schedule]
    entry = mod_dict["tok_depth@224"]
    assert not entry["input_mask"].any() and entry["target_mask"].all()


def test_one_step_roar_at_temperature_zero_is_maskgit(model, rgb):
    sampler = Sampler(model)
    roar = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224", schemes="roar", steps=1, temps=0.0))
    mg = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224", steps=1, temps=0.0))
    assert torch.equal(roar["tok_depth@224"]["tensor"], mg["tok_depth@224"]["tensor"])


def test_chaining_conditions_later_targets_on_earlier_ones(model, rgb):
    sampler = Sampler(model)
    chained = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224->tok_normal@224", steps=1, temps=0.0))
    alone = sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_normal@224", steps=1, temps=0.0))
    given = sampler.generate({"rgb@224": rgb, "tok_depth@224": chained["tok_depth@224"]["tensor"]},
                             build_schedule("rgb@224,tok_depth@224->tok_normal@224", steps=1, temps=0.0))
    assert torch.equal(chained["tok_normal@224"]["tensor"], given["tok_normal@224"]["tensor"])
    assert not torch.equal(chained["tok_normal@224"]["tensor"], alone["tok_normal@224"]["tensor"])


def test_batched_generation_equals_one_by_one(model, rgb):
    schedule = build_schedule("rgb@224->tok_depth@224->caption", steps=[2, None], tokens=[None, 8], temps=0.0)
    sampler = Sampler(model)
    batch = sampler.generate({"rgb@224": rgb}, schedule)
    for i in range(2):
        single = sampler.generate({"rgb@224": rgb[i:i + 1]}, schedule)
        assert torch.equal(single["tok_depth@224"]["tensor"][0], batch["tok_depth@224"]["tensor"][i])
        cap = single["caption"]["tensor"][0][~single["caption"]["input_mask"][0]]
        assert torch.equal(cap, batch["caption"]["tensor"][i][~batch["caption"]["input_mask"][i]])


def test_caption_condition_and_caption_stop(model):
    """Text conditions: [S_1] in the input is where the generated span goes; a stop ends the row."""
    sampler = Sampler(model)
    tokens = torch.tensor([[101, 2023, 5, 3]])
    entry = {"tensor": tokens, "input_mask": torch.zeros_like(tokens, dtype=torch.bool),
             "target_mask": torch.ones_like(tokens, dtype=torch.bool)}
    schedule = build_schedule("caption->tok_depth@224", steps=1, temps=0.0)
    out = sampler.generate({"caption": entry}, schedule)
    assert torch.equal(out["caption"]["tensor"], tokens)
    assert out["tok_depth@224"]["tensor"].shape == (1, 196)


# ------------------------------------------------------------------------------------------
# Errors users can act on
# ------------------------------------------------------------------------------------------
def test_errors(model, rgb):
    sampler = Sampler(model)
    with pytest.raises(ValueError, match="cannot generate 'tok_semseg@224'"):
        sampler.generate({"rgb@224": rgb}, build_schedule("rgb@224->tok_semseg@224", steps=1))
    with pytest.raises(ValueError, match="cannot take 'tok_clip@224' as input"):
        sampler.generate({"tok_clip@224": torch.zeros(2, 196, dtype=torch.long)},
                         build_schedule("tok_clip@224->tok_depth@224", steps=1))
    with pytest.raises(ValueError, match="batch size"):
        sampler.generate({"rgb@224": rgb, "tok_normal@224": torch.zeros(1, 196, dtype=torch.long)},
                         build_schedule("rgb@224,tok_normal@224->tok_depth@224", steps=1))
    with pytest.raises(ValueError, match="resize"):
        sampler.generate({"rgb@224": rgb[..., :200, :200]}, build_schedule("rgb@224->tok_depth@224", steps=1))
    with pytest.raises(ValueError, match="batch_size"):
        sampler.generate({}, _unconditional())


def _unconditional():
    return GenerationSchedule((), (ScheduleStep("tok_depth@224", "maskgit", 196, 1.0),))


def test_unconditional_generation(model):
    out = Sampler(model).generate({}, _unconditional(), batch_size=3, generator=torch.Generator().manual_seed(0))
    assert out["tok_depth@224"]["tensor"].shape == (3, 196)


# ------------------------------------------------------------------------------------------
# Per-token distributions (the estimate's input)
# ------------------------------------------------------------------------------------------
def test_marginals_are_the_first_full_mask_predictions(model, rgb):
    """At temperature 0 the distributions are one-hot on what a one-step greedy MaskGIT commits; at 1 they are
    proper distributions over the vocabulary, and the same for every target whatever the others are."""
    sampler = Sampler(model)
    conds = {"rgb@224": rgb}
    greedy = build_schedule("rgb@224->tok_depth@224", steps=1, temps=0.0)
    probs = sampler.marginals(conds, greedy, temperature=0.0)["tok_depth@224"]
    committed = sampler.generate(conds, greedy)["tok_depth@224"]["tensor"]
    assert probs.shape == (2, 196, model.modality_info["tok_depth@224"].vocab_size)
    assert torch.equal(probs.argmax(-1), committed) and torch.equal(probs.max(-1).values, torch.ones(2, 196))
    both = sampler.marginals(conds, build_schedule("rgb@224->tok_depth@224,tok_normal@224", steps=4))
    alone = sampler.marginals(conds, build_schedule("rgb@224->tok_depth@224", steps=8))
    assert set(both) == {"tok_depth@224", "tok_normal@224"}
    torch.testing.assert_close(both["tok_depth@224"], alone["tok_depth@224"])  # targets do not condition each other
    torch.testing.assert_close(alone["tok_depth@224"].sum(-1), torch.ones(2, 196))
    assert float(alone["tok_depth@224"].max(-1).values.mean()) < 1.0  # not collapsed


def test_guided_marginals_use_the_guided_logits(model, rgb):
    conds = {"rgb@224": rgb, "caption": torch.tensor([[101, 2023, 2003, 3]] * 2)}
    step = ScheduleStep("tok_depth@224", "maskgit", 196, 0.0, cfg_scale=3.0, cfg_conditions=("caption",))
    schedule = GenerationSchedule(tuple(conds), (step,))
    sampler = Sampler(model)
    probs = sampler.marginals(conds, schedule, temperature=0.0)["tok_depth@224"]
    assert torch.equal(probs.argmax(-1), sampler.generate(conds, schedule)["tok_depth@224"]["tensor"])


def test_marginals_refuse_sequences_and_negative_temperatures(model, rgb):
    sampler = Sampler(model)
    with pytest.raises(ValueError, match="decoded autoregressively"):
        sampler.marginals({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224,caption", steps=[1, None]))
    with pytest.raises(ValueError, match="temperature=-1"):
        sampler.marginals({"rgb@224": rgb}, build_schedule("rgb@224->tok_depth@224", steps=1), temperature=-1)
