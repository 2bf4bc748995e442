"""Inference backends: what runs a token classifier's forward pass, chosen by name through
:data:`ctxcomp.core.registry.backends` (:mod:`.base` says what a backend is).

Importing this package is light: torch, oneDNN and ONNX Runtime load with a model.
"""

from ..core.registry import backends
from .base import DEFAULT_BACKEND, ModelToRun, PreparedModel, prepare, resolve
from .device import pick_device

backends.register(
    "torch", "ctxcomp.backends.eager:full_precision", summary="fp32 torch (fp16 on CUDA)"
)
backends.register(
    "torch-bf16",
    "ctxcomp.backends.onednn:bf16",
    summary="bfloat16 torch; a oneDNN Graph trace on CPUs with native bf16",
)
backends.register(
    "torch-int8", "ctxcomp.backends.eager:int8", summary="dynamic int8 torch (lossy; CPU)"
)
backends.register(
    "onnx", "ctxcomp.backends.onnx:fp32", summary="ONNX Runtime, fused attention (CPU)"
)
backends.register(
    "onnx-int8", "ctxcomp.backends.onnx:int8", summary="ONNX Runtime, dynamic int8 (lossy; CPU)"
)
backends.register(
    "auto",
    "ctxcomp.backends.onednn:auto",
    summary="torch-bf16 on CPUs that compute bf16 natively, else torch",
)

__all__ = ["DEFAULT_BACKEND", "ModelToRun", "PreparedModel", "pick_device", "prepare", "resolve"]
