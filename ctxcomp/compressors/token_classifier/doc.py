"""One analysed document: encoder tokens with character offsets, the selection units built
on them and their windows; and an in-process memo of analyses."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass
class DocTokens:
    """Encoder tokens of one document, with offsets, and the units built on them."""

    text: str
    ids: np.ndarray  # int64 [T]
    tok_starts: np.ndarray  # [T] char offsets (whitespace trimmed)
    tok_ends: np.ndarray
    chunk_bounds: np.ndarray  # [C+1] token indices
    unit_of_tok: np.ndarray  # [T] unit index, -1 for tokens without text
    unit_starts: np.ndarray
    unit_ends: np.ndarray
    unit_first_tok: np.ndarray
    unit_ntok: np.ndarray
    forced: np.ndarray
    protected: np.ndarray  # inside a protected span (verbatim, never excluded)
    span: np.ndarray  # index of that protected span (-1: none)
    excluded: np.ndarray
    force_code: np.ndarray
    gap: np.ndarray
    nospace_first: np.ndarray
    nospace_last: np.ndarray
    digit_tok: np.ndarray  # [T] token text has a digit
    newlines_per_chunk: np.ndarray  # [C]
    probs: np.ndarray | None = None  # [T] keep probability per token


def empty_doc(text: str) -> DocTokens:
    """A document the coarse stage removed: no tokens, no units, never sent to the model."""
    z = np.zeros(0, dtype=np.int64)
    zb = np.zeros(0, dtype=bool)
    return DocTokens(
        text=text,
        ids=z,
        tok_starts=z,
        tok_ends=z,
        chunk_bounds=np.zeros(1, np.int64),
        unit_of_tok=z,
        unit_starts=z,
        unit_ends=z,
        unit_first_tok=z,
        unit_ntok=z,
        forced=zb,
        protected=zb,
        span=z,
        excluded=zb,
        force_code=z,
        gap=np.zeros(0, np.int8),
        nospace_first=zb,
        nospace_last=zb,
        digit_tok=zb,
        newlines_per_chunk=z,
    )


class AnalysisMemo:
    """LRU of document analyses keyed by the exact text, holding at most ``max_tokens``
    encoder tokens in all (~70 bytes each)."""

    def __init__(self, max_tokens: int = 1_000_000) -> None:
        self.max_tokens = int(max_tokens)
        self._d: OrderedDict[str, DocTokens] = OrderedDict()
        self._tokens = 0
        self._lock = threading.Lock()

    def get(self, text: str) -> DocTokens | None:
        with self._lock:
            d = self._d.get(text)
            if d is not None:
                self._d.move_to_end(text)
            return d

    def put(self, text: str, d: DocTokens) -> None:
        n = int(d.ids.size)
        if n > self.max_tokens:
            return
        with self._lock:
            if text in self._d:
                return
            self._d[text] = d
            self._tokens += n
            while self._tokens > self.max_tokens:
                _, old = self._d.popitem(last=False)
                self._tokens -= int(old.ids.size)
