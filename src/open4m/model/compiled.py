"""`torch.compile` for FourM: one graph for the forward and the loss, with no breaks.

FourM selects tokens by masks, so some tensor sizes depend on the data (the targets of each
modality). TorchDynamo traces such sizes only when told to capture data-dependent output shapes and
scalars; without that it breaks the graph at every selection and compiled training runs mostly
eagerly. The model itself takes no value-dependent branch while it is being compiled (its input
checks, which read values, run on eager calls only), so `fullgraph=True` holds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def compile_model(model: nn.Module, **options: Any) -> nn.Module:
    """`torch.compile(model, **options)` with data-dependent shapes traced instead of breaking the graph.

    The two TorchDynamo settings are process-wide (they are read when the graph is traced, at the
    first call, not when `torch.compile` returns); both only let more code compile.
    """
    import torch._dynamo.config as dynamo_config

    dynamo_config.capture_dynamic_output_shape_ops = True
    dynamo_config.capture_scalar_outputs = True
    return torch.compile(model, **options)
