"""One meaning for a cache named by a string, wherever it is named.

``build_pipeline(cache=...)``, ``TokenClassifierCompressor(cache=...)``,
``SegmentCache(...)``, a pipeline config's ``cache`` and ``ctxcomp cache --path`` all
resolve a string here:

* ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS) and
  ``unix:///path/to/redis.sock[?db=N]`` -> :class:`~ctxcomp.cache.redis_store.RedisStore`
  (a :class:`~ctxcomp.errors.MissingDependencyError` with the ``pip install
  'ctxcomp[redis]'`` hint when the client is not installed);
* any other ``scheme://`` -> :class:`~ctxcomp.cache.CacheError` (never a local file named
  after a URL);
* anything else is a file path -> :class:`~ctxcomp.cache.sqlite_store.SQLiteStore`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .artifact import CacheError
from .store import Store

REDIS_SCHEMES = ("redis", "rediss", "unix")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def url_scheme(where: str | os.PathLike[str]) -> str | None:
    """The URL scheme of ``where`` (lower case), or None for a path."""
    m = _SCHEME.match(where) if isinstance(where, str) else None
    return m.group(1).lower() if m else None


def is_redis_url(where: Any) -> bool:
    return isinstance(where, str) and url_scheme(where) in REDIS_SCHEMES


def open_store(where: str | os.PathLike[str] | None, **redis_options: Any) -> Store:
    """The store ``where`` names (None: the default SQLite file)."""
    scheme = url_scheme(where) if where is not None else None
    if scheme in REDIS_SCHEMES:
        from .redis_store import RedisStore

        return RedisStore(str(where), **redis_options)
    if scheme is not None:
        raise CacheError(
            f"cache {where!r}: unknown URL scheme {scheme!r}; use a file path, "
            "redis://host:port/db, rediss://host:port/db or unix:///path/to/redis.sock"
        )
    from .sqlite_store import SQLiteStore

    return SQLiteStore(where)


__all__ = ["REDIS_SCHEMES", "is_redis_url", "open_store", "url_scheme"]
