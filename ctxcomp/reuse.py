"""Reuse of what a document costs to read, across requests: many questions over one document.

The expensive, question-independent work on a document is its sentence embeddings (coarse
stage) and its windows' keep probabilities (fine stage). Both are computed once and reused:

* in-process, in a bounded LRU keyed by the exact content (text, or token ids) under one
  model: :class:`ArrayLRU`;
* in the segment cache when one is configured: window probabilities already are
  (:mod:`ctxcomp.cache.token_scores`), sentence embeddings under the kind ``SENTENCE_KIND`` here,
  namespaced like every entry, keyed by the embedding model's fingerprint and the exact
  text, and served only when the stored text is that text and the vector is finite.

Reused values equal fresh ones exactly: embeddings and window probabilities are computed
so that a text's value does not depend on what else was computed with it (the bi-encoder
embeds texts grouped by exact token length, the token classifier runs windows in shapes
set by their own length).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

SENTENCE_KIND = "coarse.sentence"
DEFAULT_VECTOR_BYTES = 64 << 20  # ~40k MiniLM sentence embeddings with their texts


class ArrayLRU:
    """Least-recently-used arrays under hashable keys, at most ``max_bytes`` in all (array
    bytes plus key length). Thread-safe; ``max_bytes=0`` keeps nothing."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._d: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._size: dict[Hashable, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._d)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get_many(self, keys: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        out: dict[Hashable, np.ndarray] = {}
        with self._lock:
            for k in keys:
                v = self._d.get(k)
                if v is not None:
                    self._d.move_to_end(k)
                    out[k] = v
        return out

    def put(self, key: Hashable, value: np.ndarray) -> None:
        size = int(value.nbytes) + _key_size(key)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self._size[key] = size
            self._bytes += size
            while self._bytes > self.max_bytes:
                old, _ = self._d.popitem(last=False)
                self._bytes -= self._size.pop(old)


def _key_size(key: object) -> int:
    if isinstance(key, (str, bytes)):
        return len(key)
    if isinstance(key, tuple):
        return sum(_key_size(k) for k in key)
    return 64


def sentence_key(model: str, text: str) -> str:
    """Segment-cache key of ``text``'s embedding under embedding model ``model``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(model.encode())
    h.update(b"\0sentence\0")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def embed_reusing(
    texts: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    model: str,
    memo: ArrayLRU | None,
    cache: Any = None,
    namespace: str = "default",
) -> np.ndarray:
    """Embeddings of ``texts`` (one row each): from ``memo``, then the segment ``cache``,
    then ``embed`` for the rest (each distinct text once); new ones are stored in both."""
    uniq = list(dict.fromkeys(texts))
    found: dict[str, np.ndarray] = {}
    if memo is not None:
        got = memo.get_many([(model, t) for t in uniq])
        found = {k[1]: v for k, v in got.items()}  # type: ignore[index]
    missing = [t for t in uniq if t not in found]
    if missing and cache is not None:
        from .cache.artifact import Artifact

        keys = {t: sentence_key(model, t) for t in missing}
        stored = cache.get(namespace, SENTENCE_KIND, list(keys.values()))
        for t, k in keys.items():
            a = stored.get(k)
            v = a.arrays.get("v") if a is not None else None
            if a is not None and v is not None and _valid(a.arrays.get("t"), t, v):
                found[t] = v.astype(np.float32)
                if memo is not None:
                    memo.put((model, t), found[t])
        missing = [t for t in missing if t not in found]
        if missing:
            vecs = np.asarray(embed(missing), dtype=np.float32)
            fresh = dict(zip(missing, vecs))
            cache.put(
                namespace,
                SENTENCE_KIND,
                {
                    keys[t]: Artifact(
                        SENTENCE_KIND,
                        {"v": v, "t": np.frombuffer(t.encode("utf-8", "surrogatepass"), np.uint8)},
                    )
                    for t, v in fresh.items()
                },
            )
            missing = []
            _remember(found, fresh, memo, model)
    if missing:
        vecs = np.asarray(embed(missing), dtype=np.float32)
        _remember(found, dict(zip(missing, vecs)), memo, model)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[t] for t in texts])


def _remember(
    found: dict[str, np.ndarray],
    fresh: dict[str, np.ndarray],
    memo: ArrayLRU | None,
    model: str,
) -> None:
    for t, v in fresh.items():
        v = np.array(v, dtype=np.float32)  # own copy: a row of a batch would pin the batch
        found[t] = v
        if memo is not None:
            memo.put((model, t), v)


def _valid(stored_text: np.ndarray | None, text: str, v: np.ndarray) -> bool:
    return (
        stored_text is not None
        and stored_text.tobytes() == text.encode("utf-8", "surrogatepass")
        and v.ndim == 1
        and v.size > 0
        and bool(np.isfinite(v).all())
    )
