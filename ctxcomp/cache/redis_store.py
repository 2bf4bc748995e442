"""A Redis store: one cache shared by many workers or machines.

Keys are ``<prefix>:<namespace>:<kind>:<key>`` with ``%`` and ``:`` percent-encoded in the
namespace and the kind, so one namespace's keys never match another's pattern
(``clear("org:42")`` leaves ``org:42:user:7`` alone) and glob characters are escaped; a batch is written in one ``MULTI``/``EXEC``
transaction (atomic: readers see all of it or none). TTL uses Redis expiry; size-bounded LRU
eviction is the server's job (``maxmemory`` + ``maxmemory-policy allkeys-lru``), as with any
Redis cache. Counters live in the hash ``<prefix>:counters``.

Redis unreachable: every call is bounded by ``connect_timeout`` / ``socket_timeout`` (no
retries), then either :class:`~ctxcomp.cache.CacheUnavailableError` is raised
(``fallback="error"``, the default), the cache is bypassed (``fallback="bypass"``: lookups
miss, writes are dropped), or another store is used (``fallback=SQLiteStore(...)``). After a
failure, Redis is not tried again for ``retry_after`` seconds, so a down server costs one
timeout, not one per call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._deps import require
from .artifact import CacheError, CacheUnavailableError
from .store import Eviction, Store

log = logging.getLogger("ctxcomp.cache")


class RedisStore:
    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ctxcomp",
        eviction: Eviction | None = None,
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        fallback: str | Store = "error",
        retry_after: float = 30.0,
        client: Any = None,
    ) -> None:
        if isinstance(fallback, str) and fallback not in ("error", "bypass"):
            raise CacheError(f"fallback must be 'error', 'bypass' or a Store, got {fallback!r}")
        self.url = url
        self.prefix = prefix
        self.eviction = eviction or Eviction()
        if self.eviction.max_bytes is not None or self.eviction.max_entries is not None:
            log.info("RedisStore: size limits are enforced by the server's maxmemory policy")
        self.fallback = fallback
        self.retry_after = float(retry_after)
        self._down_until = 0.0
        self._last_error: BaseException | None = None
        self._lock = threading.Lock()
        if client is None:
            redis = require("redis", "redis")
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
                retry_on_timeout=False,
                retry=None,
                health_check_interval=0,
            )
        self._r = client

    # -- failure handling -------------------------------------------------------------

    def _call(self, fn: Any, default: Any) -> Any:
        redis = require("redis", "redis")
        now = time.monotonic()
        if now < self._down_until:
            return self._fail(self._last_error, default, fn)
        try:
            return fn(self._r)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self._down_until = time.monotonic() + self.retry_after
            self._last_error = exc
            return self._fail(exc, default, fn)

    def _fail(self, exc: BaseException | None, default: Any, fn: Any) -> Any:
        if isinstance(self.fallback, str):
            if self.fallback == "error":
                raise CacheUnavailableError(
                    f"Redis cache at {self.url} is unreachable ({exc}); start it, or pass "
                    "fallback='bypass' (no caching) or fallback=<another store>"
                ) from exc
            return default
        return _FALLBACK

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _k(self, ns: str, kind: str, key: str) -> str:
        return f"{self.prefix}:{_part(ns)}:{_part(kind)}:{key}"

    def _pattern(self, ns: str | None, kind: str | None = None) -> str:
        """SCAN pattern of exactly one namespace (and kind), or of every entry."""
        pat = _esc(self.prefix) + ":"
        if ns is not None:
            pat += _esc(_part(ns)) + ":"
            if kind is not None:
                pat += _esc(_part(kind)) + ":"
        return pat + "*"

    # -- protocol -------------------------------------------------------------------

    def get_many(self, namespace: str, kind: str, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        r = self._call(lambda r: r.mget([self._k(namespace, kind, k) for k in keys]), None)
        if r is _FALLBACK:
            return self.fallback.get_many(namespace, kind, keys)  # type: ignore[union-attr]
        if r is None:
            return {}
        return {k: bytes(v) for k, v in zip(keys, r) if v is not None}

    def put_many(self, namespace: str, kind: str, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        ttl = self.eviction.ttl_seconds

        def _put(r: Any) -> bool:
            p = r.pipeline(transaction=True)
            for k, v in items.items():
                p.set(self._k(namespace, kind, k), bytes(v), px=int(ttl * 1000) if ttl else None)
            p.sadd(f"{self.prefix}:namespaces", namespace)
            p.execute()
            return True

        if self._call(_put, False) is _FALLBACK:
            self.fallback.put_many(namespace, kind, items)  # type: ignore[union-attr]

    def delete(self, namespace: str, kind: str, keys: Iterable[str]) -> None:
        ks = [self._k(namespace, kind, k) for k in keys]
        if not ks:
            return
        if self._call(lambda r: r.delete(*ks), 0) is _FALLBACK:
            self.fallback.delete(namespace, kind, keys)  # type: ignore[union-attr]

    def _scan(self, r: Any, pattern: str) -> list[bytes]:
        return list(r.scan_iter(match=pattern, count=1000))

    def iter_kind(self, namespace: str, kind: str) -> Iterator[tuple[str, bytes]]:
        pat = self._pattern(namespace, kind)
        cut = len(self._k(namespace, kind, ""))

        def _all(r: Any) -> list[tuple[str, bytes]]:
            out = []
            names = self._scan(r, pat)
            for i in range(0, len(names), 500):
                part = names[i : i + 500]
                for n, v in zip(part, r.mget(part)):
                    if v is not None:
                        out.append((n.decode()[cut:], bytes(v)))
            return out

        res = self._call(_all, [])
        if res is _FALLBACK:
            yield from self.fallback.iter_kind(namespace, kind)  # type: ignore[union-attr]
        else:
            yield from res

    def namespaces(self) -> list[str]:
        res = self._call(
            lambda r: sorted(x.decode() for x in r.smembers(f"{self.prefix}:namespaces")), []
        )
        if res is _FALLBACK:
            return self.fallback.namespaces()  # type: ignore[union-attr]
        return list(res)

    def clear(self, namespace: str | None = None) -> int:
        def _clear(r: Any) -> int:
            pat = self._pattern(namespace)
            book = {f"{self.prefix}:namespaces".encode(), f"{self.prefix}:counters".encode()}
            names = [x for x in self._scan(r, pat) if x not in book]
            n = 0
            for i in range(0, len(names), 500):
                n += int(r.unlink(*names[i : i + 500]))
            if namespace is not None:
                r.srem(f"{self.prefix}:namespaces", namespace)
            else:
                r.unlink(*book)
            return n

        res = self._call(_clear, 0)
        if res is _FALLBACK:
            return int(self.fallback.clear(namespace))  # type: ignore[union-attr]
        return int(res)

    def info(self) -> dict[str, Any]:
        def _info(r: Any) -> dict[str, Any]:
            per: dict[str, dict[str, int]] = {}
            total_e = total_b = 0
            for ns in sorted(x.decode() for x in r.smembers(f"{self.prefix}:namespaces")):
                names = self._scan(r, self._pattern(ns))
                p = r.pipeline(transaction=False)
                for n in names:
                    p.strlen(n)
                sizes = p.execute() if names else []
                per[ns] = {"entries": len(names), "bytes": int(sum(sizes))}
                total_e += len(names)
                total_b += int(sum(sizes))
            counters = {k.decode(): int(v) for k, v in r.hgetall(f"{self.prefix}:counters").items()}
            return {
                "backend": self.name,
                "url": _redact(self.url),
                "entries": total_e,
                "bytes": total_b,
                "namespaces": per,
                "counters": counters,
            }

        res = self._call(
            _info, {"backend": self.name, "url": _redact(self.url), "unavailable": True}
        )
        if res is _FALLBACK:
            out = dict(self.fallback.info())  # type: ignore[union-attr]
            out["fallback_for"] = _redact(self.url)
            return out
        return dict(res)

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        rows = {k: int(v) for k, v in deltas.items() if v}
        if not rows:
            return

        def _add(r: Any) -> None:
            p = r.pipeline(transaction=False)
            for k, v in rows.items():
                p.hincrby(f"{self.prefix}:counters", k, v)
            p.execute()

        if self._call(_add, None) is _FALLBACK:
            self.fallback.add_counters(deltas)  # type: ignore[union-attr]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._r.close()

    def __repr__(self) -> str:
        return f"RedisStore({_redact(self.url)!r})"


_FALLBACK = object()


def _part(s: str) -> str:
    """A namespace or kind as one key component: no ``:`` inside (``%`` escapes)."""
    return s.replace("%", "%25").replace(":", "%3A")


def _esc(s: str) -> str:
    out = []
    for ch in s:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _redact(url: str) -> str:
    """Hide a password in ``redis://user:pass@host`` URLs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0] if ":" in cred else ""
        return f"{scheme}://{user}:***@{host}"
    return url
