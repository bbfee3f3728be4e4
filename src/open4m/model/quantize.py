"""int8 inference on the CPU: weight-only with torchao (the optional extra `open4m[int8]`), or dynamic.

Two ways to run a FourM's linear layers in int8, both for inference only (the model is built at
float32 and quantised in place; norms, embeddings tables and attention stay float32):

- `int8` (weight-only, torchao's `Int8WeightOnlyConfig`): every linear weight stored as int8 with one
  scale per output channel, activations float32. The weights take a quarter of the memory; the
  speed depends on torchao's CPU kernel (on the 2-core AVX-512 machine of `benchmarks/int8.py` it was
  slower than float32: it pays in memory, not time).
- `int8-dynamic` (torch's own `torch.ao.quantization.quantize_dynamic`): int8 weights and activations
  quantised per batch on the fly, multiplied by FBGEMM's int8 kernels, float32 out. No extra package;
  the faster of the two on a CPU. The patch and embedding projections at the model's input stay float32.

`Pipeline(dtype="int8" | "int8-dynamic")` and `open4m generate --dtype ...` do this; `benchmarks/int8.py`
measures the agreement of the generated tokens with float32 and the speed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import ConfigError
from .layers import Linear

__all__ = ["INT8_MODES", "quantize_int8", "require_torchao", "is_quantized"]

INT8_MODES = ("int8", "int8-dynamic")

_INSTALL = "pip install 'open4m[int8]'"


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """torchao logs a warning per CUDA kernel library it cannot load on a CPU-only machine, and torch one about
    an enum it registers: noise for a CPU user, silenced while it imports."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def require_torchao() -> Any:
    """The `torchao.quantization` module, or a one-line error naming the extra to install."""
    try:
        with _quiet_import():
            from torchao import quantization
    except ImportError:
        raise ConfigError(f"dtype int8 needs torchao, which is not installed: {_INSTALL} (or use fp32 / bf16)") from None
    return quantization


def quantize_int8(model: nn.Module, mode: str = "int8") -> nn.Module:
    """Quantise `model`'s linear layers in place (`mode`: `int8` weight-only through torchao, or
    `int8-dynamic`); returns it in eval mode. Embedding tables stay float32 (a lookup reads one row, nothing
    to save there); an output head tied to its embedding table is quantised on its own, the table keeps
    its floats."""
    if mode not in INT8_MODES:
        raise ConfigError(f"int8 mode {mode!r}: use {' or '.join(INT8_MODES)}")
    for module in model.modules():
        # open4m's Linear multiplies few rows as W @ xᵀ itself, which neither int8 form supports; plain
        # nn.Linear goes through F.linear (torchao's tensor dispatches it to its kernel) or is swapped whole.
        if type(module) is Linear:
            module.__class__ = nn.Linear
    if mode == "int8":
        quantization = require_torchao()
        quantization.quantize_(model, quantization.Int8WeightOnlyConfig())
    else:
        _quantize_dynamic(model)
    return model.eval().requires_grad_(False)


def _quantize_dynamic(model: nn.Module) -> None:
    """torch's dynamic int8 linear modules in place of every nn.Linear but the input projections (their
    weight's dtype tells the embedding which dtype to feed, and a quantised module has no such weight)."""
    quantize_dynamic = getattr(getattr(torch, "ao", None), "quantization", None)
    quantize_dynamic = getattr(quantize_dynamic, "quantize_dynamic", None)
    if quantize_dynamic is None:
        raise ConfigError(f"this torch {torch.__version__} no longer has torch.ao.quantization.quantize_dynamic; "
                          "use dtype int8 (torchao) instead of int8-dynamic")
    from torch.ao.quantization import default_dynamic_qconfig

    spec = {name: default_dynamic_qconfig for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not name.startswith("encoder_embeddings.")}
    with warnings.catch_warnings():  # torch marks the eager quantisation API deprecated in favour of torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def is_quantized(model: nn.Module) -> bool:
    """Whether a linear layer of `model` runs in int8 (a torchao weight or a dynamic quantised module)."""
    return any(type(m.weight).__module__.startswith("torchao") if isinstance(m, nn.Linear)
               else type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())
