"""Where a model runs: one device choice for inference and training."""

from __future__ import annotations

from .._deps import require
from ..errors import InputError


def pick_device(device: str | None = "auto") -> str:
    """``"auto"`` (or None) means CUDA when present, then Apple MPS, else CPU; a CUDA device
    asked for on a machine without CUDA is an :class:`~ctxcomp.InputError`."""
    torch = require("torch")
    if device is not None and device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
