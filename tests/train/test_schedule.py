import pytest

from open4m.train.schedule import lr_at, peak_lr


def test_peak_lr_scales_with_batch():
    assert peak_lr(1e-4, 256) == pytest.approx(1e-4)
    assert peak_lr(1e-4, 2048) == pytest.approx(8e-4)
    assert peak_lr(1e-4, 2048, lr=5e-5) == 5e-5


def test_warmup_then_cosine():
    assert lr_at(0, 100, 1.0, warmup=10) == 0.0
    assert lr_at(5, 100, 1.0, warmup=10) == pytest.approx(0.5)
    assert lr_at(10, 100, 1.0, warmup=10, min_lr=0.1) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, warmup=10, min_lr=0.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, warmup=10, min_lr=0.1) == pytest.approx(0.1)
    values = [lr_at(s, 100, 1.0, warmup=10) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_tokens_unit_is_the_same_curve():
    assert lr_at(5_000, 1_000_000, 2.0, warmup=10_000) == pytest.approx(1.0)


def test_bad_schedule():
    with pytest.raises(ValueError, match="warmup"):
        lr_at(0, 10, 1.0, warmup=10)
