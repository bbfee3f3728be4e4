"""What sources share: telling map-style sources from streams, and a stream's slot among parallel ones."""

from __future__ import annotations

import torch

from ..data.batches import is_map_style

__all__ = ["is_map_style", "stream_slot"]


def stream_slot() -> tuple[int, int]:
    """(this stream's index, number of parallel streams) over distributed ranks x DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = torch.utils.data.get_worker_info()
    wid, nw = (info.id, info.num_workers) if info else (0, 1)
    return rank * nw + wid, world * nw
