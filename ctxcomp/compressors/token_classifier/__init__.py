"""LLMLingua-2-style token classification, split by concern:

* :mod:`.options` — :class:`TokenClassifierOptions`, the one declaration of what decides
  what is kept;
* :mod:`.analysis` (with :mod:`.doc`, :mod:`.windows`) — encoder tokens, selection units,
  protected spans and model windows of a document;
* :mod:`.scoring` — keep probabilities of every window, through the segment cache or an
  in-process memo;
* :mod:`.shaping` — the selection rules' capped bonuses;
* :mod:`.selection` — one unit table per request, the coarse stage's guidance applied,
  selection under one global budget; :mod:`.reference` — LLMLingua-2's per-chunk rule;
* :mod:`.result` — the :class:`~ctxcomp.CompressionResult`;
* :mod:`.compressor` — :class:`TokenClassifierCompressor`, which composes them.

The model's forward pass runs in :mod:`ctxcomp.backends`.
"""

from ...core.fingerprint import file_fingerprint
from .compressor import TokenClassifierCompressor
from .options import DEFAULT_FORCE_TOKENS, TokenClassifierOptions

__all__ = [
    "DEFAULT_FORCE_TOKENS",
    "TokenClassifierCompressor",
    "TokenClassifierOptions",
    "file_fingerprint",
]
