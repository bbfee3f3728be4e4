"""The loop in one process: token budgets, bf16 autocast, activation checkpointing, logs, errors."""

import math

import pytest
import torch

from open4m.model import FourM
from open4m.train.schedule import lr_at
from open4m.train.tasks.fourm import train


def test_token_budget_bf16_checkpointing_and_logs(micro):
    pytest.importorskip("tensorboard", reason="the TensorBoard extra (pip install 'open4m[tensorboard]') is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = micro(model={"activation_checkpointing": True},
                train={"steps": 1, "tokens": 640, "precision": "bf16", "eval_every": 0, "save_every": 100},
                optim={"lr": 1e-3, "warmup": 128, "min_lr": 0.0}, log={"every": 1, "progress": False, "tensorboard": True})
    result = train(cfg)
    tokens_per_step = 4 * (16 + 16)
    assert result.steps == math.ceil(640 / tokens_per_step) == 5 and result.tokens == 5 * tokens_per_step
    train_rows = [r for r in result.metrics if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5]
    for r in train_rows:  # lr of a step is scheduled on the tokens seen before it
        assert r["train/lr"] == pytest.approx(lr_at(r["tokens"] - tokens_per_step, 640, 1e-3, 128, 0.0))
        assert all(math.isfinite(v) for k, v in r.items() if k.startswith("train/loss"))
    assert any("val/loss/tok_rgb@224" in r for r in result.metrics)
    assert "tok_depth@224" in result.summary and "val last" in result.summary
    events = EventAccumulator(str(result.run_dir / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5]
    model = FourM.from_pretrained(result.model_path)
    assert model.config.dim == 32

    from open4m.generation.sampler import Sampler
    from open4m.generation.schedules import build_schedule

    schedule = build_schedule("tok_rgb@224->tok_depth@224", steps=2, temps=0.0)
    out = Sampler(model).generate({"tok_rgb@224": torch.zeros(2, 196, dtype=torch.long)}, schedule)
    depth = out["tok_depth@224"]["tensor"]
    assert depth.reshape(2, -1).shape == (2, 196) and int(depth.max()) < 8192


def test_bad_setups_fail_before_training(micro, monkeypatch):
    import open4m.sources

    def no_data(*args, **kwargs):
        raise AssertionError("the data was built (a world source renders) before the schedule was checked")

    with monkeypatch.context() as m:
        m.setattr(open4m.sources, "build_recipe_sources", no_data)
        with pytest.raises(ValueError, match="warmup"):
            train(micro(train={"steps": 3}, optim={"warmup": 5}))
    with pytest.raises(ValueError, match="lacks"):
        train(micro(data={"mixture": "4m-7"}))


def test_resume_with_another_global_batch_is_refused(micro):
    train(micro("a", optim={"warmup": 0}, train={"steps": 2, "save_every": 2, "eval_every": 0}))
    with pytest.raises(ValueError, match="global_batch=4, now 2"):
        train(micro("a", data={"batch_size": 2}, train={"steps": 4, "save_every": 2, "eval_every": 0}))


def test_resume_with_another_architecture_names_the_recipe_not_strict_loading(micro):
    """A run folder made by another recipe (other sizes, LoRA): the fix is that recipe or another folder; the
    loader's advice for Python callers (strict=False) would resume nothing."""
    from open4m.errors import CheckpointError

    quiet = {"save_every": 2, "eval_every": 0}
    train(micro("a", optim={"warmup": 0}, train={"steps": 2, **quiet}))
    for other in ({"arch": {"dim": 16, "encoder_depth": 1, "decoder_depth": 1, "num_heads": 2}}, {"lora_rank": 2}):
        with pytest.raises(CheckpointError, match="another model than this recipe builds") as err:
            train(micro("a", model=other, optim={"warmup": 0}, train={"steps": 4, **quiet}))
        assert "config.yaml" in str(err.value) and "strict" not in str(err.value)


def test_a_rerun_of_a_finished_run_logs_nothing_twice(micro):
    """The rerun validates its last step again (for TrainResult.final); that record was appended to metrics.jsonl
    once more per rerun, so the log no longer described one run."""
    from open4m.train.monitor import read_metrics

    recipe = micro("done", optim={"warmup": 0}, train={"steps": 2, "save_every": 2, "eval_every": 0})
    first = train(recipe)
    log = (first.run_dir / "metrics.jsonl").read_text()
    assert any("val/loss" in r for r in read_metrics(first.run_dir))
    for _ in range(2):
        again = train(recipe)
        assert (again.run_dir / "metrics.jsonl").read_text() == log and again.final == first.final


def test_training_time_adds_up_over_resumes_and_an_old_checkpoints_is_unknown(micro):
    import json

    from open4m.train.checkpointing import latest_checkpoint, run_train_seconds

    flat, quiet = {"warmup": 0}, {"save_every": 2, "eval_every": 0}
    first = train(micro("t", optim=flat, train={"steps": 2, **quiet}))
    assert first.train_seconds > 0 and run_train_seconds(first.run_dir) == pytest.approx(first.train_seconds)
    resumed = train(micro("t", optim=flat, train={"steps": 4, **quiet}))
    assert resumed.train_seconds > first.train_seconds
    assert run_train_seconds(resumed.run_dir) == pytest.approx(resumed.train_seconds)

    state = latest_checkpoint(resumed.run_dir) / "state.json"  # as the engine wrote it before it kept the count
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "train_seconds"}))
    assert run_train_seconds(resumed.run_dir) is None
    legacy = train(micro("t", optim=flat, train={"steps": 6, **quiet}))
    assert legacy.train_seconds is None and run_train_seconds(legacy.run_dir) is None  # unknown stays unknown
    assert run_train_seconds(legacy.run_dir.parent / "never_trained") is None


def _token_folder(root, names, n, seed):
    import numpy as np

    from open4m.sources.synthetic import SyntheticTokens

    data = SyntheticTokens(names, n, seed=seed)
    for i in range(n):
        for name, value in data[i].items():
            (root / name).mkdir(parents=True, exist_ok=True)
            np.save(root / name / f"s{seed}_{i:03d}.npy", np.asarray(value))
    return root


def test_mixed_datasets_with_a_caption_only_corpus(micro, tmp_path):
    full = _token_folder(tmp_path / "images", ["tok_rgb@224", "tok_depth@224", "caption"], 8, seed=1)
    text = _token_folder(tmp_path / "text", ["caption"], 8, seed=2)
    sources = [{"source": str(full), "weight": 0.6}, {"source": str(text), "weight": 0.4, "modalities": ["caption"]}]
    result = train(micro("mix", data={"sources": sources}, train={"steps": 4, "eval_every": 0}))
    losses = [r for r in result.metrics if "train/loss" in r]
    assert len(losses) == 4 and all(math.isfinite(r["train/loss"]) for r in losses)
    assert FourM.from_pretrained(result.model_path).output_modalities == ["tok_rgb@224", "tok_depth@224", "caption"]

    with pytest.raises(ValueError, match="not both"):
        micro("both", data={"sources": sources, "source": str(full)})
    with pytest.raises(ValueError, match="unknown keys \\['wieght'\\]"):
        train(micro("typo", data={"sources": [{"source": str(full), "wieght": 1}]}))


def test_a_bad_recipe_leaves_nothing_behind(micro, tmp_path):
    from open4m.errors import Open4mError

    for bad in ({"data": {"modalities": ["tok_rgb@224", "tok_nothing@224"]}},
                {"data": {"source": str(tmp_path / "no_such_folder")}},
                {"optim": {"warmup": 50}}):
        with pytest.raises((Open4mError, KeyError)):
            train(micro("bad", **bad))
        assert not (tmp_path / "bad").exists(), bad


def test_resumed_tensorboard_curves_do_not_repeat_steps(micro):
    pytest.importorskip("tensorboard", reason="the TensorBoard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    flat = {"warmup": 0}
    log = {"every": 1, "progress": False, "tensorboard": True}
    train(micro("tb", optim=flat, log=log, train={"steps": 3, "save_every": 2, "eval_every": 0}))
    result = train(micro("tb", optim=flat, log=log, train={"steps": 5, "save_every": 2, "eval_every": 0}))
    events = EventAccumulator(str(result.run_dir / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [1, 2, 3, 4, 5]  # step 3 of the first run is purged: the resumed run logged it again


def test_wandb_resumes_its_own_run(micro, monkeypatch):
    """The W&B run id is kept in the run folder and handed back on resume (a stand-in wandb module records calls)."""
    import sys
    import types

    calls = []
    fake = types.ModuleType("wandb")
    fake.util = types.SimpleNamespace(generate_id=lambda: "run-abc123")
    fake.init = lambda **kw: calls.append(kw) or types.SimpleNamespace(log=lambda *a, **k: None, finish=lambda: None)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    log = {"every": 1, "progress": False, "wandb": True}
    train(micro("wb", optim={"warmup": 0}, log=log, train={"steps": 2, "save_every": 2, "eval_every": 0}))
    result = train(micro("wb", optim={"warmup": 0}, log=log, train={"steps": 3, "save_every": 2, "eval_every": 0}))
    assert [c["id"] for c in calls] == ["run-abc123", "run-abc123"] and all(c["resume"] == "allow" for c in calls)
    assert (result.run_dir / "wandb_run_id").read_text() == "run-abc123"
