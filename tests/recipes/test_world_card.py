"""The world model card's account of the recipe's stages."""

from open4m.recipes.world_card import _stages


def test_a_stage_that_changes_the_data_settings_states_the_values_it_sets():
    fourm = {"optim": {"lr": 2e-3, "warmup": 500}, "train": {"steps": 22000, "seed": 0}}
    stages = [{"scenes": 24000, "optim": {"lr": 6e-4, "warmup": 200}, "train": {"steps": 12000, "seed": 1}},
              {"scenes": 48000, "train": {"steps": 12000, "seed": 2},
               "data": {"target_tokens": 144, "target_alphas": {"world_caption": 5.0}}}]
    text = _stages(stages, fourm)
    assert ("Stage 2 restarts from stage 1's EMA weights with a fresh AdamW on 24000 train scenes: 12000 steps, "
            "lr 0.0006 with 200 warm-up steps and cosine decay, seed 1.") in text
    assert ("Stage 3 restarts from stage 2's EMA weights with a fresh AdamW on 48000 train scenes: 12000 steps, lr "
            "0.002 with 500 warm-up steps and cosine decay, seed 2; it also sets `data.target_tokens` 144, "
            "`data.target_alphas.world_caption` 5.0.") in text
