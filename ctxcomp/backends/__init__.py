"""Inference backends: what runs a token classifier's forward pass.

Importing this package is light: torch, oneDNN and ONNX Runtime load with a model.
"""

from .device import pick_device

__all__ = ["pick_device"]
