"""The engine's tally and the FourM task's loss scalars: presence from the model's target counts, no host syncs."""

from __future__ import annotations

import math

import torch

from open4m.model import LossOutput
from open4m.train.distributed import DistInfo
from open4m.train.engine import StepOutput, _Tally
from open4m.train.tasks.fourm import loss_scalars

SINGLE = DistInfo(0, 1, 0, torch.device("cpu"))


def _out(loss: float, per_mod: dict[str, float], counts: dict[str, int]) -> StepOutput:
    out = LossOutput(torch.tensor(loss), {m: torch.tensor(v) for m, v in per_mod.items()},
                     {m: torch.tensor(n) for m, n in counts.items()})
    return StepOutput(out.loss, loss_scalars(out))


def test_a_modality_is_averaged_over_the_micro_batches_where_it_had_targets():
    tally = _Tally()
    tally.add(_out(2.0, {"a": 3.0, "b": 0.0, "c": 0.0}, {"a": 5, "b": 0, "c": 0}))
    tally.add(_out(4.0, {"a": 1.0, "b": 6.0, "c": 0.0}, {"a": 2, "b": 7, "c": 0}))
    # "c" never had targets: it is not reported at all, rather than as a mean of zeros
    assert tally.means(SINGLE) == {"loss": 3.0, "loss/a": 2.0, "loss/b": 6.0}


def test_a_real_zero_loss_counts_and_an_absent_value_never_leaks():
    tally = _Tally()
    tally.add(_out(1.0, {"a": 0.0, "b": math.nan}, {"a": 4, "b": 0}))  # a predicted perfectly; b absent
    tally.add(_out(1.0, {"a": 2.0, "b": 1.0}, {"a": 4, "b": 3}))
    assert tally.means(SINGLE) == {"loss": 1.0, "loss/a": 1.0, "loss/b": 1.0}


def test_add_never_reads_a_value_on_the_host(monkeypatch):
    def refuse(*_):
        raise AssertionError("host sync in _Tally.add")

    tally = _Tally()
    out = _out(2.0, {"a": 3.0}, {"a": 5})
    monkeypatch.setattr(torch.Tensor, "item", refuse)
    monkeypatch.setattr(torch.Tensor, "__bool__", refuse)
    monkeypatch.setattr(torch.Tensor, "tolist", refuse)
    for _ in range(3):
        tally.add(out)
    monkeypatch.undo()
    assert tally.means(SINGLE) == {"loss": 2.0, "loss/a": 3.0}
