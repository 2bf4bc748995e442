"""The eager torch backends: "torch" (fp32; fp16 on CUDA) and "torch-int8" (dynamic int8
quantisation of the Linear layers, CPU). torch is imported when a model is loaded."""

from __future__ import annotations

import warnings

from .._deps import require
from .base import ModelToRun, PreparedModel, require_cpu


def full_precision(target: ModelToRun) -> PreparedModel:
    """Backend "torch": fp32 weights and activations; fp16 on CUDA."""
    torch = require("torch")
    dtype = torch.float16 if target.device.startswith("cuda") else torch.float32
    model = target.model.to(device=target.device, dtype=dtype)
    return PreparedModel("torch", model)


def int8(target: ModelToRun) -> PreparedModel:
    """Backend "torch-int8": int8 weights, activations quantised per call (lossy; CPU).
    Each window runs alone: the activations' scale depends on everything in the call."""
    require_cpu("torch-int8", target)
    torch = require("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(
            target.model, {torch.nn.Linear}, dtype=torch.qint8
        )
    return PreparedModel("torch-int8", model, shapes="alone")
