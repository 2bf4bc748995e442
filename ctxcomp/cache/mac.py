"""Keyed digests (HMAC-SHA256) for caches that others can write to (a shared Redis).

The checksum inside every artifact catches accidents (torn writes, bit rot), not someone
with write access to the store who rewrites an entry and its checksum. With a secret key
(``SegmentCache(key=...)``, a pipeline config's ``cache_key`` or ``$CTXCOMP_CACHE_KEY``),
every value is stored as::

    b"CXM1" | HMAC-SHA256(key, namespace, kind, cache key, value) | value

and a value is served only if its tag verifies: entries written without the key, with
another key, or copied to another key or namespace are misses. Without a key, tagged
entries are misses too (they cannot be checked), and they are left in place.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .artifact import CacheError

MAGIC = b"CXM1"
ENV = "CTXCOMP_CACHE_KEY"
_TAG = 32
_MIN_KEY = 16


def resolve_key(key: str | bytes | None) -> bytes | None:
    """The HMAC key: ``key``, else ``$CTXCOMP_CACHE_KEY``, else None (no tags)."""
    if key is None:
        key = os.environ.get(ENV) or None
        if key is None:
            return None
    b = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(b) < _MIN_KEY:
        raise CacheError(
            f"the cache key must be at least {_MIN_KEY} bytes (a random secret, e.g. "
            "python -c 'import secrets; print(secrets.token_hex(32))'), "
            f"got {len(b)}"
        )
    return b


def _tag(key: bytes, namespace: str, kind: str, k: str, value: bytes) -> bytes:
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in (b"ctxcomp-cache-v1", namespace.encode(), kind.encode(), k.encode()):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    h.update(value)
    return h.digest()


def seal(key: bytes, namespace: str, kind: str, k: str, value: bytes) -> bytes:
    return MAGIC + _tag(key, namespace, kind, k, value) + value


def is_sealed(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def unseal(key: bytes, namespace: str, kind: str, k: str, data: bytes) -> bytes | None:
    """The value if ``data`` carries a valid tag for (namespace, kind, k) under ``key``."""
    if len(data) < len(MAGIC) + _TAG or not is_sealed(data):
        return None
    tag, value = data[len(MAGIC) : len(MAGIC) + _TAG], data[len(MAGIC) + _TAG :]
    ok = hmac.compare_digest(tag, _tag(key, namespace, kind, k, value))
    return value if ok else None


__all__ = ["ENV", "MAGIC", "is_sealed", "resolve_key", "seal", "unseal"]
