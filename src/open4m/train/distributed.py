"""torchrun integration: process groups, DDP or FSDP2 wrapping, cross-rank reductions.

One switch (`ddp` / `fsdp`) picks the strategy; the backend follows the device (NCCL on CUDA,
gloo on CPU). Without torchrun's environment everything degrades to a single process.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(name: str | None, option: str = "train.device") -> torch.device:
    """A device name (``auto`` or None: CUDA when there is one, else the CPU) as a torch device; a name torch
    does not know, or a device this machine lacks, is a `ConfigError` naming `option` (the recipe key or flag)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's own message lists every backend; say what a recipe takes
        raise ConfigError(f"{option}={name!r} is not a device; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}={name!r} but no CUDA device is visible on this machine; use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option}={name!r} but Apple's MPS is not available on this machine; use cpu or auto")
    return device


def init_distributed(device_name: str) -> DistInfo:
    """Join torchrun's process group when WORLD_SIZE > 1; each rank gets its own GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world <= 1:
        return DistInfo(0, 1, 0, device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def wrap(model: nn.Module, strategy: str, info: DistInfo) -> nn.Module:
    """DDP (replicated weights) or FSDP2 (`fully_shard` per transformer block, then the root)."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in _blocks(model):
            fully_shard(block)
        # Resharding the root after forward too keeps the registered parameters sharded after a
        # no-grad (validation) forward, which the optimizer and checkpoints rely on.
        return fully_shard(model, reshard_after_forward=True)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The units FSDP2 shards one by one: the elements of the outermost `ModuleList`s (transformer blocks
    of FourM's encoder and decoder, of a tokenizer's ViT or UNet stages), so any task's model shards."""
    blocks: list[nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside or not isinstance(module, nn.ModuleList):
            continue
        for element in module:
            if any(p.requires_grad for p in element.parameters()):
                blocks.append(element)
            inside.update(id(m) for m in element.modules())
    return blocks


def skeleton(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose state-dict tensors live on the meta device (no memory), made before
    sharding, so the full weights gathered at the end of an FSDP run can be loaded into a plain module."""
    state_ids = {id(t) for t in model.state_dict(keep_vars=True).values()}
    memo: dict[int, object] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        if id(t) in state_ids and id(t) not in memo:
            meta = torch.empty_like(t, device="meta")
            memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def unwrap(model: nn.Module) -> nn.Module:
    """The FourM inside DDP / torch.compile wrappers (FSDP2 shards in place: nothing to unwrap)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in unwrap(model).parameters())


def sum_across_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def mean_across_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= info.world
    return values


def check_in_sync(model: nn.Module, info: DistInfo) -> None:
    """Raise when ranks hold different replicated weights (a silent DDP divergence)."""
    if not info.enabled or is_sharded(model):
        return
    with torch.no_grad():
        local = torch.stack([p.detach().double().sum() for p in unwrap(model).parameters()]).to(info.device)
    gathered = [torch.empty_like(local) for _ in range(info.world)]
    dist.all_gather(gathered, local)
    for r, g in enumerate(gathered[1:], 1):
        if not torch.equal(g, gathered[0]):
            raise RuntimeError(f"rank {r} weights differ from rank 0: data-parallel replicas diverged")


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
