"""Visual-token pruning: drop and merge visual tokens before they reach a vision-language model.

>>> from ctxcomp.core import compressors
>>> pruner = compressors.create("divprune")               # doctest: +SKIP
>>> r = pruner.compress(features, ratio=0.25)             # (N, D) features -> VisualResult
>>> r.kept, r.sizes, r.features                            # doctest: +SKIP

Methods (each a :class:`VisualTokenPruner`, registered by name in
:data:`ctxcomp.core.compressors`): ``vtc-cls``, ``divprune``, ``tome``, ``dymu``,
``fastv``, ``temporal`` (video), and the baselines ``random`` and ``pooling``. Models:
:mod:`ctxcomp.vision.hf` (a :class:`~ctxcomp.vision.hf.VisionEncoder` for pictures, and
:class:`~ctxcomp.vision.hf.PrunedVLM` for LLaVA, LLaVA-OneVision and Qwen2-VL).

Importing this package is light (no torch): names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..core.registry import compressors

METHODS: dict[str, tuple[str, str]] = {
    "random": ("ctxcomp.vision.methods.random_prune:RandomPruner", "baseline: k random tokens"),
    "pooling": ("ctxcomp.vision.methods.pooling:UniformPooling", "baseline: grid average pooling"),
    "vtc-cls": ("ctxcomp.vision.methods.vtc_cls:VTCCLS", "top-k by the encoder's [CLS] attention"),
    "divprune": ("ctxcomp.vision.methods.divprune:DivPrune", "max-min diverse subset"),
    "tome": ("ctxcomp.vision.methods.tome:ToMe", "token merging inside the ViT"),
    "dymu": ("ctxcomp.vision.methods.dymu:DyMU", "ToMe with calibrated per-block thresholds"),
    "fastv": ("ctxcomp.vision.methods.fastv:FastV", "drop tokens an LLM layer ignored"),
    "temporal": ("ctxcomp.vision.video:TemporalMerging", "video: merge static tokens over time"),
}

for _name, (_target, _summary) in METHODS.items():
    compressors.register(_name, _target, summary=_summary, replace=True)

_LAZY = {
    "VisualTokens": "ctxcomp.vision.tokens",
    "VisualResult": "ctxcomp.vision.result",
    "VisualTokenPruner": "ctxcomp.vision.pruner",
    "CLS_ATTENTION": "ctxcomp.vision.tokens",
    "LLM_ATTENTION": "ctxcomp.vision.tokens",
    "render": "ctxcomp.vision.view",
}

__all__ = ["METHODS", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctxcomp.vision' has no attribute {name!r}")
