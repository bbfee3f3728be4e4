"""TensorBoard scalar event files, written without the tensorboard package.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length, payload,
masked CRC-32C of the payload) whose payloads are `Event` protocol buffers. Scalars need only
four protobuf fields, so a few lines of wire-format encoding replace a dependency that would
pull in protobuf, grpc and a web server just to append numbers to a file.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Iterator, Mapping


def _crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, *, version: str | None = None, scalars: Mapping[str, float] = {}) -> bytes:
    msg = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
    if version is not None:
        msg += _field_bytes(3, version.encode())
    if scalars:
        values = b"".join(
            _field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(v)))
            for tag, v in scalars.items()
        )
        msg += _field_bytes(5, values)
    return msg


def _record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", _masked_crc(header)) + payload + struct.pack("<I", _masked_crc(payload))


class EventWriter:
    """Append-only scalar logger producing `events.out.tfevents.*` files TensorBoard reads."""

    def __init__(self, log_dir: str | Path) -> None:
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = log_dir / name
        self._file = open(self.path, "ab")
        self._file.write(_record(_event(time.time(), 0, version="brain.Event:2")))
        self._file.flush()

    def add_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        self._file.write(_record(_event(time.time(), step, scalars=scalars)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_records(path: str | Path) -> Iterator[bytes]:
    """Payloads of a TFRecord file, checking both checksums (used by the tests and for debugging)."""
    data = Path(path).read_bytes()
    pos = 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        payload = data[pos + 12:pos + 12 + length]
        (pcrc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if hcrc != _masked_crc(header) or pcrc != _masked_crc(payload):
            raise ValueError(f"{path}: corrupt record at byte {pos}")
        yield payload
        pos += 16 + length
