"""Bad input a user can give reaches them as an Open4mError (exit 2 in the CLI) naming the fix, not a traceback.

One representative case per area whose errors moved into the hierarchy: each asserts the class (an
Open4mError that is still the builtin it replaced) and that the one-line message says what to do.
"""

import numpy as np
import pytest
import torch

from open4m.errors import CheckpointError, ConfigError, DataError, Open4mError, UnknownNameError

from fourm_batches import random_batch


def _raises(cls, match, fn, *args, **kwargs) -> Open4mError:
    with pytest.raises(cls, match=match) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, Open4mError), type(err)
    assert "\n" not in str(err)  # one line, as the CLI prints it
    return err


# -- the token dict given to FourM ----------------------------------------------------------------
@pytest.fixture(scope="module")
def fourm():
    from open4m.model import FourM, FourMConfig

    torch.manual_seed(0)
    mods = ["rgb@224", "tok_depth@224", "caption"]
    return FourM(FourMConfig(domains_in=mods, domains_out=mods[1:], dim=64, encoder_depth=1, decoder_depth=1,
                             num_heads=2))


def test_bad_batch_to_fourm(fourm):
    batch = random_batch(["rgb@224", "tok_depth@224", "caption"])
    batch["tok_depth@224"]["tensor"] = batch["tok_depth@224"]["tensor"] + 10**6
    _raises(DataError, r"token ids must lie in .*tokenize with the tokenizer this model was trained with",
            fourm, batch, 64, 48)
    batch = random_batch(["rgb@224", "tok_depth@224", "caption"])
    batch["caption"]["input_mask"] = batch["caption"]["input_mask"].long()
    _raises(DataError, r"input_mask must be bool .*cast it with \.bool\(\)", fourm, batch, 64, 48)
    batch = random_batch(["rgb@224", "tok_depth@224", "caption"])
    batch["rgb@224"]["tensor"] = batch["rgb@224"]["tensor"][0]
    _raises(DataError, r"expected pixels \(B, 3, H, W\).*add the batch dimension", fourm, batch, 64, 48)
    batch = random_batch(["rgb@224", "tok_depth@224", "caption"])
    del batch["caption"]["target_mask"]
    _raises(DataError, "missing 'target_mask'; build entries with open4m.generation.full_input", fourm, batch, 64, 48)


# -- masking -----------------------------------------------------------------------------------------
def test_bad_masking_mixture_and_roles():
    from open4m.data.masking import AlphaComponent, AlphaMixture, DirichletMasking, TransferMasking, collate

    comp = AlphaComponent("a", {"tok_rgb@224": 1.0}, {"tok_rgb@224": 1.0})
    _raises(ConfigError, "give weights >= 0 with a positive sum", AlphaMixture, (comp,), (-1.0,))
    _raises(ConfigError, "give one each", AlphaMixture, (comp,), (1.0, 2.0))
    _raises(ConfigError, "alphas must be >= 0", AlphaComponent, "b", {"tok_rgb@224": -1.0}, {})
    _raises(ConfigError, "keep scheme 'most' .*use one of", AlphaComponent, "c", {"caption": 1.0}, {},
            keep={"caption": "most"})
    _raises(ConfigError, "give one or one each", AlphaMixture.single, ["tok_rgb@224", "caption"], [1.0, 2.0, 3.0])
    mixture = AlphaMixture.single(["tok_rgb@224", "caption"], 1.0)
    _raises(ConfigError, "list each in at most one", DirichletMasking, mixture, input_only=["caption"],
            target_only=["caption"])
    masker = DirichletMasking(mixture)
    _raises(DataError, "add them, drop them from the mixture, or mask with allow_missing=True", masker,
            {"caption": [300]}, 0)
    _raises(ConfigError, "list each as one or the other", TransferMasking, ["caption"], ["caption"])
    _raises(DataError, "drop it from the masker's inputs/targets", TransferMasking(["caption"], []), {})
    _raises(DataError, "give at least one masked sample", collate, [])


# -- tokenizers ----------------------------------------------------------------------------------------
def test_bad_token_ids_to_vq():
    from open4m.tokenizers.vq import CosineVQ, Memcodes

    vq = CosineVQ(8, 16).eval()
    _raises(DataError, r"cast them with \.long\(\)", vq.indices_to_embedding, torch.zeros(1, 2, 2))
    _raises(DataError, r"token ids must lie in \[0, 16\)", vq.indices_to_embedding, torch.full((1, 2, 2), 99))
    _raises(DataError, "reshape the ids to their token grid", vq.indices_to_embedding,
            torch.zeros(1, 4, dtype=torch.long))
    _raises(DataError, r"expects latents of shape \(B, 8, h, w\).*pass the encoder's output", vq,
            torch.zeros(1, 3, 2, 2))
    memcodes = Memcodes(8, 16, heads=2)
    _raises(DataError, "reshape the ids to their token grid", memcodes.indices_to_embedding,
            torch.zeros(1, 2, 2, dtype=torch.long))


@pytest.fixture(scope="module")
def text_tokenizer():
    from open4m.tokenizers.text import TextTokenizer

    return TextTokenizer.train(["a dog chasing a ball on the grass", "two people eating pizza"] * 10, vocab_size=4400)


def test_bad_text_tokenizer_ids(text_tokenizer):
    n = text_tokenizer.vocab_size
    _raises(DataError, rf"use ids in 0\.\.{n - 1}", text_tokenizer.id_to_token, n + 5)
    _raises(DataError, "decode ids made by this tokenizer", text_tokenizer.decode, [5, n + 1])
    _raises(DataError, "check its spelling", text_tokenizer.token_to_id, "zzz-not-a-token")
    _raises(DataError, r"use kind 0\.\.3 and value 0\.\.999", text_tokenizer.value_id, 4, 0)
    _raises(ConfigError, "use k in 0..", text_tokenizer.sentinel_id, 10**4)


# -- recipe values -------------------------------------------------------------------------------------
def test_bad_recipe_values():
    from open4m.train.ema import EMA
    from open4m.train.engine import TrainingDiverged
    from open4m.train.lora import add_lora
    from open4m.train.optim import build_adamw, parameter_groups
    from open4m.train.schedule import lr_at
    from open4m.train.tasks.finetune.objectives import build_objective
    from open4m.train.tasks.finetune.recipe import TaskSection

    _raises(ConfigError, "lower optim.warmup", lr_at, 0, 100, 1e-3, warmup=200)
    _raises(ConfigError, r"set train.steps \(or train.tokens\) > 0", lr_at, 0, 0, 1e-3)
    _raises(ConfigError, "set train.ema_decay", EMA, torch.nn.Linear(2, 2), 1.5)
    _raises(ConfigError, "set task.num_classes|set it", build_objective, TaskSection(name="segmentation"), None)
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    _raises(ConfigError, "drop some model.freeze prefixes", build_adamw, parameter_groups(frozen, 0.05), 1e-3)
    _raises(ConfigError, "set a rank such as 8", add_lora, [torch.nn.ModuleList([torch.nn.Linear(2, 2)])], 0)
    assert issubclass(TrainingDiverged, ConfigError) and issubclass(TrainingDiverged, FloatingPointError)


def test_ema_state_of_another_model_is_a_checkpoint_error():
    from open4m.train.ema import EMA

    ema = EMA(torch.nn.Linear(2, 2), 0.99)
    _raises(CheckpointError, "resume with the recipe that wrote the checkpoint", ema.load_state_dict, {})


# -- metrics ---------------------------------------------------------------------------------------------
def test_metric_fed_mismatched_or_empty_data():
    from open4m.metrics import DepthMetrics, NormalMetrics, SegmentationMetrics, palette_distance

    _raises(DataError, "resize the prediction to the ground truth first", DepthMetrics().update,
            np.ones((4, 4)), np.ones((5, 5)))
    _raises(ConfigError, "use align=None or align='median'", DepthMetrics(align="mean").update,
            np.ones((4, 4)), np.ones((4, 4)))
    _raises(DataError, "update\\(\\) with ground truth that has depth > 0", DepthMetrics().compute)
    _raises(DataError, "put the xyz channels last", NormalMetrics().update, np.ones((3, 4, 4)), np.ones((3, 4, 4)))
    _raises(DataError, "set num_classes", SegmentationMetrics(3).update, np.full((2, 2), 5), np.zeros((2, 2)))
    _raises(DataError, "pass non-empty", palette_distance, [], [[0, 0, 0]])


# -- names, data and generation -------------------------------------------------------------------------
def test_unknown_schedule_target_suggests_the_closest():
    from open4m.generation.schedules import GenerationSchedule, ScheduleStep

    schedule = GenerationSchedule(("rgb@224",), (ScheduleStep(target="tok_depth@224", scheme="maskgit", num_tokens=196,
                                                                temperature=1.0),))
    err = _raises(UnknownNameError, "Did you mean 'tok_depth@224'", schedule.steps_for, "tok_dpth@224")
    assert isinstance(err, KeyError)


def test_bad_sample_data():
    from open4m.data.loader import codec_input
    from open4m.data.synthetic.world import to_model_form

    _raises(DataError, "store the caption as a string", codec_input, "caption", 3, None)
    _raises(ConfigError, "choose one of", to_model_form, "albedo", np.zeros((4, 4)))
