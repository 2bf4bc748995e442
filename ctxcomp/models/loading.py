"""Loading token-classification compressors: the embedded default, a delta directory
(trained with ``ctxcomp train``) or any Hugging Face checkpoint, by one function.

``load_classifier`` is what the name ``"token-classifier"`` creates in
:data:`ctxcomp.core.compressors`, so ``ctxcomp.load_compressor``, the config builder and
the CLI load a model the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelLoadError
from .delta import is_delta_dir, load_delta


def default_model_path() -> Path:
    """Directory of the embedded default model (``ctxcomp/models/default``)."""
    return Path(__file__).resolve().parent / "default"


def load_classifier(model: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """A :class:`~ctxcomp.TokenClassifierCompressor` for ``model``: ``None`` is the embedded
    default, a delta directory is loaded over its packaged base encoder, anything else is a
    Hugging Face hub id or checkpoint directory. Keyword arguments go to the compressor;
    ``backend=None`` means the model's own (the embedded default's is ``"auto"``; a
    checkpoint's is :data:`ctxcomp.backends.DEFAULT_BACKEND`)."""
    if model is None:
        return load_default(**kwargs)
    if not isinstance(model, (str, os.PathLike)) or not os.fspath(model).strip():
        raise InputError(f"model must name a hub id or a local path, got {model!r}")
    if is_delta_dir(model):  # a model trained by `ctxcomp train` (delta over a packaged base)
        return load_delta_compressor(model, **kwargs)
    from ..compressors.token_classifier import TokenClassifierCompressor

    return TokenClassifierCompressor(os.fspath(model), **kwargs)


def load_delta_compressor(
    path: str | os.PathLike[str], *, base_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Any:
    """A :class:`~ctxcomp.TokenClassifierCompressor` over a delta directory; its
    ``compressor_options`` are defaults the keyword arguments override."""
    from dataclasses import fields

    from ..compressors.token_classifier import TokenClassifierCompressor, TokenClassifierOptions

    model, tok, cfg = load_delta(path, base_path=base_path)
    kwargs.setdefault("keep_label", int(cfg.get("keep_label", 1)))
    if kwargs.get("backend") is None and cfg.get("backend"):
        kwargs["backend"] = str(cfg["backend"])
    opts = cfg.get("compressor_options") or {}
    allowed = {f.name for f in fields(TokenClassifierOptions)}
    if not isinstance(opts, Mapping) or set(opts) - allowed:
        bad = sorted(set(opts) - allowed) if isinstance(opts, Mapping) else opts
        raise ModelLoadError(
            f"delta config compressor_options may only set selection options "
            f"({sorted(allowed)}), got {bad!r}"
        )
    for k, v in opts.items():
        kwargs.setdefault(k, v)
    return TokenClassifierCompressor(model, tok, **kwargs)


def load_default(**kwargs: Any) -> Any:
    """The embedded default compressor (keyword arguments as for TokenClassifierCompressor)."""
    p = default_model_path()
    if not is_delta_dir(p):
        raise ModelLoadError(
            f"the embedded default model is missing from this installation ({p.name}/config.json)"
        )
    return load_delta_compressor(p, **kwargs)
