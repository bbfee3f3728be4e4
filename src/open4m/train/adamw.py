"""AdamW that can keep its moments in bf16 and apply each parameter's update inside the backward pass.

Why: training stores 16 bytes per parameter before a single activation — fp32 weights, fp32
gradients and two fp32 moments; for base 4M-7 (361 M parameters) that is 5.8 GB, most of a step's
peak. Two changes take half of it away without touching the fp32 master weights:

- **bf16 moments** (`state_dtype=torch.bfloat16`): the update is still computed in fp32 and only the
  stored moments are rounded (to nearest). That is safe while one step's change of the second moment,
  a fraction ``1 - beta2`` of it, is larger than bf16's resolution (2^-8): ``beta2 <= 0.99``; 4M trains
  with 0.95. A larger ``beta2`` is refused rather than silently stalling the second moment.
- **Stepping inside the backward pass** (:class:`StepInBackward`): a parameter's gradient is complete
  the moment autograd has accumulated it, so the update can be applied there and the gradient freed;
  the gradients of the whole model never exist at once. The price is that nothing can look at all
  gradients before the update: no global-norm clipping, no fp16 loss scaling, no data-parallel
  all-reduce — the engine refuses those combinations.

With fp32 moments the update is torch's own AdamW kernel (fused where the device has it), so both
storage types share one set of state names (``step``, ``exp_avg``, ``exp_avg_sq``) and a checkpoint of
one resumes in the other.
"""

from __future__ import annotations

import inspect
import math
from functools import lru_cache
from typing import Iterable

import torch
from torch.optim.adamw import adamw as _torch_adamw

from ..errors import ConfigError
from .memory import release_free_memory

__all__ = ["AdamW", "StepInBackward", "LOWEST_BF16_RESOLUTION", "check_state_dtype", "fused_available"]

# One step changes the second moment by a fraction (1 - beta2) of itself; bf16 rounds away relative
# changes below about 2^-8, so beta2 above 1 - 2^-8 * 2.56 ~ 0.99 would freeze it.
LOWEST_BF16_RESOLUTION = 0.01
_CHUNK = 1 << 18  # elements per slice of the bf16-moment update: the fp32 temporaries stay in cache


def check_state_dtype(state_dtype: torch.dtype, betas: tuple[float, float]) -> None:
    """Refuse moments that cannot represent the optimizer's own step (see the module docstring)."""
    if state_dtype not in (torch.float32, torch.bfloat16):
        raise ConfigError(f"AdamW moments can be fp32 or bf16, got {state_dtype}")
    if state_dtype == torch.bfloat16 and 1 - betas[1] < LOWEST_BF16_RESOLUTION:
        raise ConfigError(f"bf16 AdamW moments need betas[1] <= {1 - LOWEST_BF16_RESOLUTION} (one step changes the "
                          f"second moment by {1 - betas[1]:g} of itself, below bf16's resolution), got {betas[1]}; "
                          "use optim.state_dtype: fp32 or a smaller second beta")


def fused_available(device: torch.device | str) -> bool:
    """Whether torch.optim.AdamW(fused=True) supports parameters on this device type."""
    return _fused_for_type(torch.device(device).type)


@lru_cache(maxsize=None)
def _fused_for_type(device_type: str) -> bool:  # asked per parameter and step: inspect once
    if "fused" not in inspect.signature(torch.optim.AdamW).parameters:
        return False
    if device_type == "cuda":
        return True
    return device_type == "cpu" and tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)


_TORCH_KEYS = dict(amsgrad=False, maximize=False, foreach=None, capturable=False, differentiable=False,
                   decoupled_weight_decay=True)


class AdamW(torch.optim.Optimizer):
    """Decoupled-weight-decay Adam (the same update as ``torch.optim.AdamW``) whose moments are stored in
    ``state_dtype``, and which can update one parameter at a time (:meth:`step_parameter`)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, *, state_dtype: torch.dtype = torch.float32,
                 fused: bool | None = None) -> None:
        check_state_dtype(state_dtype, betas)
        # torch.optim.AdamW's group keys too, so the state dicts of both load into either
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, **_TORCH_KEYS,
                                      fused=fused))
        self.state_dtype = state_dtype
        self.fused = fused
        # Moments allocated now, before any activation exists, sit in one block of memory; allocated
        # lazily during the first backward pass they would interleave with freed activations and
        # leave the allocator holes it cannot return (0.5-1 GB of resident memory at base size).
        for group in self.param_groups:
            for p in group["params"]:
                self._state(p)

    def _moment_dtype(self, p: torch.Tensor) -> torch.dtype:
        return self.state_dtype if p.dtype == torch.float32 else p.dtype

    def _step_device(self, p: torch.Tensor) -> torch.device:
        # torch's fused kernel wants the step count beside the parameter, its for-each path on the host
        return p.device if self._fused_for(p) else torch.device("cpu")

    def _fused_for(self, p: torch.Tensor) -> bool:
        return self.fused if self.fused is not None else fused_available(p.device)

    def _state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            dtype = self._moment_dtype(p)
            state["step"] = torch.zeros((), dtype=torch.float32, device=self._step_device(p))
            state["exp_avg"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore moments and hyper-parameters, converting the moments straight to this optimizer's storage
        (a checkpoint written with fp32 moments resumes with bf16 ones and back). torch's own loader would
        first cast every moment to the parameter's dtype: a transient fp32 copy of all of them."""
        saved_groups = state_dict["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the optimizer state has a different parameter layout than this optimizer "
                             f"({[len(g['params']) for g in saved_groups]} vs "
                             f"{[len(g['params']) for g in self.param_groups]} parameters per group)")
        unsupported = [(k, g[k]) for g in saved_groups for k in ("amsgrad", "maximize") if g.get(k)]
        if unsupported:
            raise ValueError(f"the optimizer state was written by an AdamW with {dict(unsupported)}, which this "
                             "AdamW does not implement")
        params = {pid: p for saved, own in zip(saved_groups, self.param_groups)
                  for pid, p in zip(saved["params"], own["params"])}
        for pid, saved in state_dict["state"].items():
            p = params[pid]
            own = self._state(p)
            own["step"] = torch.as_tensor(saved["step"], dtype=torch.float32).to(self._step_device(p)).reshape(())
            for key in ("exp_avg", "exp_avg_sq"):
                own[key].copy_(saved[key])  # in place: the moments stay where they were first allocated
        for saved, own in zip(saved_groups, self.param_groups):
            own.update({k: v for k, v in saved.items() if k not in ("params", "fused", "foreach")})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim.Optimizer's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            exact = [p for p in group["params"] if p.grad is not None and self._exact(p)]
            if exact:
                self._torch_update(exact, [p.grad.to_dense() if p.grad.is_sparse else p.grad for p in exact], group)
            for p in group["params"]:
                if p.grad is not None and not self._exact(p):
                    self._rounded_update(p, p.grad, group)
        return loss

    def _exact(self, p: torch.Tensor) -> bool:
        """Whether ``p``'s moments are stored in its own dtype (torch's kernel updates them in place)."""
        return self.state[p]["exp_avg"].dtype == p.dtype

    @torch.no_grad()
    def step_parameter(self, p: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        """Update one parameter of ``group`` from ``grad`` (what :class:`StepInBackward` calls)."""
        if self._exact(p):
            self._torch_update([p], [grad.to_dense() if grad.is_sparse else grad], group)
        else:
            self._rounded_update(p, grad, group)

    def _torch_update(self, params: list[torch.Tensor], grads: list[torch.Tensor], group: dict) -> None:
        states = [self.state[p] for p in params]
        fused = self._fused_for(params[0])
        beta1, beta2 = group["betas"]
        _torch_adamw(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                     [s["step"] for s in states], foreach=None if fused else False, fused=fused or None,
                     amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                     eps=group["eps"], maximize=False)

    def _rounded_update(self, p: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        """torch's AdamW on fp32 copies of the low-precision moments, one slice at a time: the copies stay
        small (and in cache), the arithmetic is torch's own kernel, only the stored moments are rounded."""
        state = self.state[p]
        state["step"] += 1
        update = _SliceUpdate(group, float(state["step"]), self._fused_for(p))
        p, grad = _local(p), _local(grad)
        exp_avg, exp_avg_sq = _local(state["exp_avg"]), _local(state["exp_avg_sq"])
        if grad.is_sparse:
            _rounded_sparse(p, grad, exp_avg, exp_avg_sq, update)
            return
        tensors = (p, grad, exp_avg, exp_avg_sq)
        if not all(t.is_contiguous() for t in tensors):  # a strided view: one slice, the whole tensor
            update(*tensors)
            return
        flat = [t.view(-1) for t in tensors]
        for start in range(0, p.numel(), _CHUNK):
            update(*(t[start:start + _CHUNK] for t in flat))


def _local(t: torch.Tensor) -> torch.Tensor:
    """This process's shard of an FSDP2 (DTensor) parameter, gradient or moment: AdamW is elementwise."""
    return t.to_local() if hasattr(t, "to_local") else t


class _SliceUpdate:
    """One AdamW step of a slice of a parameter whose moments are stored in low precision."""

    def __init__(self, group: dict, step: float, fused: bool) -> None:
        self.group, self.step, self.fused = group, step, fused

    def __call__(self, p: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor) -> None:
        m, v = exp_avg.float(), exp_avg_sq.float()
        beta1, beta2 = self.group["betas"]
        # torch's functional AdamW advances the step count it is given: hand it the count before this step
        before = torch.full((), self.step - 1, dtype=torch.float32, device=p.device if self.fused else "cpu")
        _torch_adamw([p], [grad.to(p.dtype)], [m], [v], [], [before], foreach=False, fused=self.fused or None,
                     amsgrad=False, beta1=beta1, beta2=beta2, lr=self.group["lr"],
                     weight_decay=self.group["weight_decay"], eps=self.group["eps"], maximize=False)
        exp_avg.copy_(m)
        exp_avg_sq.copy_(v)


def _rounded_sparse(p: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                    update: _SliceUpdate) -> None:
    """The update from a row-sparse gradient (embedding tables), densified one slice of rows at a time:
    every row's moments still decay, but no (vocab x dim) dense gradient is ever allocated."""
    grad = grad.coalesce()
    rows, values = grad.indices()[0], grad.values()
    per_slice = max(1, _CHUNK // max(1, p[0].numel()))
    bounds = torch.searchsorted(rows, torch.arange(0, p.shape[0] + per_slice, per_slice, device=rows.device))
    for i, start in enumerate(range(0, p.shape[0], per_slice)):
        part = slice(start, start + per_slice)
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        dense = torch.zeros_like(p[part], dtype=values.dtype)
        dense.index_add_(0, rows[lo:hi] - start, values[lo:hi])
        update(p[part], dense, exp_avg[part], exp_avg_sq[part])


class StepInBackward:
    """Applies ``optimizer``'s update to each parameter as soon as autograd has its whole gradient, then
    frees that gradient, so the backward pass never holds every gradient at once.

    ``release_midway`` hands the free heap pages back to the operating system once, when half of the
    parameters are updated (:mod:`open4m.train.memory`): by then the decoder's activations and
    gradients are gone, and the encoder's backward pass would otherwise keep their holes resident
    (200 MB less peak memory at base 4M-7 size, for a few milliseconds).

    With gradient accumulation only the last micro-batch's backward steps (:meth:`arm` before it);
    earlier ones accumulate into ``.grad`` as usual. :meth:`finish` returns the step's global gradient
    norm, summed as the gradients went by (what the engine logs).
    """

    def __init__(self, optimizer: AdamW, release_midway: bool = False) -> None:
        self.optimizer = optimizer
        self._track_norm = True
        self._group_of = {p: g for g in optimizer.param_groups for p in g["params"]}
        self._release_at = len(self._group_of) // 2 if release_midway else -1
        self._applied = 0
        self._armed = False
        self._norm_sq: torch.Tensor | None = None
        self._handles = [p.register_post_accumulate_grad_hook(self._apply) for p in self._group_of]

    def arm(self, track_norm: bool = True) -> None:
        """The next backward pass completes the step's gradients: update inside it (and sum the squared
        gradient norm on the way when ``track_norm``: one more pass over each gradient)."""
        self._armed = True
        self._track_norm = track_norm
        self._norm_sq = None
        self._applied = 0

    def _apply(self, p: torch.Tensor) -> None:
        if not self._armed:
            return
        grad = p.grad.coalesce() if p.grad.is_sparse else p.grad
        if self._track_norm:
            square = torch.linalg.vector_norm(grad._values() if grad.is_sparse else grad, dtype=torch.float32).square()
            self._norm_sq = square if self._norm_sq is None else self._norm_sq + square
        self.optimizer.step_parameter(p, grad, self._group_of[p])
        p.grad = None
        self._applied += 1
        if self._applied == self._release_at:
            release_free_memory()

    def finish(self) -> torch.Tensor:
        """Disarm after the stepping backward pass; returns that step's global gradient norm (NaN when it
        was not tracked)."""
        self._armed = False
        norm_sq = self._norm_sq if self._norm_sq is not None else torch.full((), math.nan if not self._track_norm else 0.0)
        return norm_sq.sqrt()

    def remove(self) -> None:
        """Unhook from the parameters (the optimizer keeps working with an ordinary ``step()``)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
