"""Tracing helpers shared by the backends that compile a model (ONNX export, oneDNN Graph)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """``model`` with eager (matmul + softmax) attention inside the block, its own outside:
    tracers (ONNX export, TorchScript) see the pattern that fusers recognise, where SDPA is
    one opaque op. Models that cannot switch are left as they are."""
    old = getattr(model.config, "_attn_implementation", None)
    switched = False
    if old not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, TypeError, AttributeError):
            switched = False
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(old)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' logging at error level: tracers probe every attribute of every module,
    and properties such as ``loss_function`` of a headless submodule log a warning meant for
    training code."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
