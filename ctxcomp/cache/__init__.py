"""Segment cache: compress once, reuse across queries and budgets.

>>> from ctxcomp.cache import SegmentCache
>>> comp = ctxcomp.TokenClassifierCompressor(model, cache=SegmentCache("segments.sqlite"))  # doctest: +SKIP

The token classifier's keep probabilities do not depend on the budget, so a cached window
is re-compressed at any ratio without a model call. Stores: SQLite (default), Redis,
memory. Near-duplicate reuse (``SegmentCache(..., near=True)``) uses a FAISS index per
namespace. See docs/cache.md.

Importing this package is light: faiss, sentence-transformers and redis load on use.
"""

from typing import Any

from .artifact import Artifact, CacheError, CacheUnavailableError, CorruptEntryError
from .keys import Segment, config_hash, segment_id, segment_text, token_key
from .segment_cache import CacheStats, SegmentCache, as_cache
from .sqlite_store import SQLiteStore, default_cache_path
from .store import Eviction, MemoryStore, Store
from .token_scores import WINDOW_KIND  # registers the tc.window value checks with every import


def __getattr__(name: str) -> Any:  # lazy: these need optional dependencies when used
    if name == "RedisStore":
        from .redis_store import RedisStore

        return RedisStore
    if name == "NearIndex":
        from .index import NearIndex

        return NearIndex
    if name == "Embedder":
        from .embed import Embedder

        return Embedder
    raise AttributeError(name)


__all__ = [
    "WINDOW_KIND",
    "Artifact",
    "CacheError",
    "CacheStats",
    "CacheUnavailableError",
    "CorruptEntryError",
    "Embedder",
    "Eviction",
    "MemoryStore",
    "NearIndex",
    "RedisStore",
    "SQLiteStore",
    "Segment",
    "SegmentCache",
    "Store",
    "as_cache",
    "config_hash",
    "default_cache_path",
    "segment_id",
    "segment_text",
    "token_key",
]
