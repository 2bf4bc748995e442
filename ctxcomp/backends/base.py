"""What a backend is: a factory, registered by name in :data:`ctxcomp.core.registry.backends`,
that takes a loaded token-classification model (:class:`ModelToRun`) and returns how its
forward pass runs (:class:`PreparedModel`).

Every loading path resolves a backend name here (:func:`prepare`): ``None`` is
:data:`DEFAULT_BACKEND`, an unknown name is one :class:`~ctxcomp.InputError` listing the
registered names. A third-party backend registers its factory (``"module:attribute"`` or the
callable) under a new name, or through the ``ctxcomp.backends`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..core.registry import backends
from ..errors import InputError

DEFAULT_BACKEND = "torch"

# How windows may share a batch so that none's probabilities depend on the others:
# "grid" each runs padded to a fixed grid length above its own (eager torch rounds
# differently at other padded lengths), "free" any lengths share a batch (the result does
# not depend on the padded length), "alone" each window runs by itself (activations
# quantised with one scale per call).
Shapes = Literal["grid", "free", "alone"]
# a compiled forward: int64 (input_ids, attention_mask) arrays -> float32 logits
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ModelToRun:
    """What a backend factory is given."""

    model: Any  # a transformers token-classification model, eval mode, as loaded
    fingerprint: str  # the checkpoint's fingerprint (keys compiled artefacts)
    device: str  # resolved: "cpu", "cuda", "cuda:N", "mps"
    pad_id: int
    max_len: int  # the model's position limit (longest window, special tokens included)
    owned: bool  # False for a model the caller passed in: change a copy, never it


@dataclass(frozen=True)
class PreparedModel:
    """What a backend factory returns: the model as it runs, and a compiled forward when
    there is one (else the torch model runs eagerly)."""

    backend: str  # the backend that runs ("auto" resolves to one): recorded in cache keys
    model: Any
    runner: Runner | None = None
    shapes: Shapes = "grid"


def resolve(name: str | None) -> str:
    """``name``, or :data:`DEFAULT_BACKEND` for None; an unregistered name is an
    :class:`~ctxcomp.InputError` listing the registered ones."""
    name = DEFAULT_BACKEND if name is None else name
    if not isinstance(name, str):
        raise InputError(f"backend must be a name (a string), got {name!r}")
    backends.entry(name)
    return name


def prepare(name: str | None, target: ModelToRun) -> PreparedModel:
    """Run the backend registered under ``name`` (None: the default) on ``target``."""
    name = resolve(name)
    out = backends.create(name, target)
    if not isinstance(out, PreparedModel):
        raise InputError(f"backend {name!r} returned {type(out).__name__}, not a PreparedModel")
    return out


def require_cpu(name: str, target: ModelToRun) -> None:
    if target.device != "cpu":
        raise InputError(f"backend {name!r} runs on the CPU; use device='cpu'")
