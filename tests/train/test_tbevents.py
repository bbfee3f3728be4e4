import struct

import pytest

from open4m.train.tbevents import EventWriter, crc32c, read_records


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def test_event_file_round_trip(tmp_path):
    w = EventWriter(tmp_path)
    w.add_scalars({"train/loss": 2.5, "train/lr": 1e-3}, step=7)
    w.close()
    records = list(read_records(w.path))
    assert len(records) == 2
    assert b"brain.Event:2" in records[0]
    assert b"train/loss" in records[1] and struct.pack("<f", 2.5) in records[1]
    assert records[1][9:11] == b"\x10\x07"  # step field


def test_corrupt_file_is_detected(tmp_path):
    w = EventWriter(tmp_path)
    w.add_scalars({"a": 1.0}, step=1)
    w.close()
    data = bytearray(w.path.read_bytes())
    data[-6] ^= 0xFF
    w.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        list(read_records(w.path))


def test_tensorboard_reads_it(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed; the format is checked above")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    w = EventWriter(tmp_path)
    for step in range(3):
        w.add_scalars({"train/loss": 3.0 - step}, step=step)
    w.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.value for e in acc.Scalars("train/loss")] == [3.0, 2.0, 1.0]
