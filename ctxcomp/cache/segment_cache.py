"""SegmentCache: a store + (optionally) a near-duplicate index + statistics.

Compressors call :meth:`SegmentCache.get` / :meth:`SegmentCache.put` with a namespace, a
kind and content keys; every value read is verified (:mod:`ctxcomp.cache.artifact`), and a
value that fails is deleted and counted as a miss — never served. Near-duplicate lookup
(``near=True``) embeds segments, keeps one FAISS index per namespace (loaded from
``index_dir`` when saved there and consistent, else rebuilt from the embeddings in the
store), and only ever searches the caller's namespace.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import (
    Artifact,
    CacheError,
    CorruptEntryError,
    decode,
    register_validator,
    unit_vector,
)
from .keys import check_namespace
from .mac import is_sealed, resolve_key, seal, unseal
from .spec import open_store
from .store import Eviction, MemoryStore, Store

EMBEDDING_KIND = "embedding"
register_validator(EMBEDDING_KIND, lambda a: unit_vector(a.arrays.get("v"), "v"))
_FLUSH_EVERY = 5.0


@dataclass
class CacheStats:
    """Counters of this process's use of the cache (segments, not documents)."""

    hits: int = 0
    misses: int = 0
    near_hits: int = 0
    corrupt: int = 0
    unauthenticated: int = 0  # entries without a valid keyed digest: misses, never served
    puts: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    model_tokens_saved: int = 0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hit_rate": self.hit_rate}


class SegmentCache:
    """Per-segment artifacts keyed by content, isolated by namespace.

    ``store``: a :class:`~ctxcomp.cache.store.Store`, a path to an SQLite file, a
    ``redis://`` / ``rediss://`` / ``unix://`` URL (:mod:`ctxcomp.cache.spec`), or ``None``
    for the default SQLite file (:func:`~ctxcomp.cache.sqlite_store.default_cache_path`).
    ``key``: secret for keyed digests of every entry (:mod:`ctxcomp.cache.mac`; default
    ``$CTXCOMP_CACHE_KEY``): use one whenever others can write to the store.
    ``near``: enable near-duplicate reuse (needs the ``faiss`` extra). ``near_threshold``:
    minimum cosine similarity of segment embeddings to try reuse; ``max_fresh_fraction``:
    above this share of unmatched tokens the segment is scored fresh in full.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        near: bool = False,
        embedder: Any = None,
        near_threshold: float = 0.9,
        max_fresh_fraction: float = 0.5,
        context_tokens: int = 48,
        index_dir: str | os.PathLike[str] | None = None,
        index_kind: str = "auto",
        exact_below: int = 50_000,
        use_gpu: bool | str = "auto",
        key: str | bytes | None = None,
    ) -> None:
        self._key = resolve_key(key)
        if store is None or isinstance(store, (str, os.PathLike)):
            store = open_store(store)
        if not isinstance(store, Store):
            raise CacheError(
                f"store must be a Store, a path, a Redis URL or None, got {type(store).__name__}"
            )
        self.store = store
        self.near = bool(near)
        self.near_threshold = float(near_threshold)
        self.max_fresh_fraction = float(max_fresh_fraction)
        self.context_tokens = int(context_tokens)
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self._index_kw = {"kind": index_kind, "exact_below": exact_below, "use_gpu": use_gpu}
        self._embedder = embedder
        self._indexes: dict[str, Any] = {}
        self.stats = CacheStats()
        self._unflushed: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self._lock = threading.RLock()
        if self.near:
            from .._deps import require

            require("faiss", "faiss")

    # -- values -----------------------------------------------------------------------

    def get(
        self, namespace: str, kind: str, keys: Iterable[str], *, count: bool = True
    ) -> dict[str, Artifact]:
        """Verified artifacts for the keys present; corrupt values are deleted, not served."""
        check_namespace(namespace)
        keys = list(dict.fromkeys(keys))
        raw = self.store.get_many(namespace, kind, keys)
        out: dict[str, Artifact] = {}
        bad: list[str] = []
        nbytes = 0
        unauthenticated = 0
        for k, v in raw.items():
            body = self._open(namespace, kind, k, v)
            if body is None:
                unauthenticated += 1
                continue
            try:
                out[k] = decode(body, kind=kind)
                nbytes += len(v)
            except CorruptEntryError:
                bad.append(k)
        if bad:
            self.store.delete(namespace, kind, bad)
        with self._lock:
            self.stats.corrupt += len(bad)
            self._bump("corrupt", len(bad))
            self.stats.unauthenticated += unauthenticated
            self._bump("unauthenticated", unauthenticated)
            self.stats.bytes_read += nbytes
            if count:
                self.stats.hits += len(out)
                self.stats.misses += len(keys) - len(out)
                self._bump("hits", len(out))
                self._bump("misses", len(keys) - len(out))
        self._maybe_flush()
        return out

    @property
    def keyed(self) -> bool:
        """Whether entries carry keyed digests (HMAC)."""
        return self._key is not None

    def _open(self, namespace: str, kind: str, k: str, v: bytes) -> bytes | None:
        """The artifact bytes of a stored value, or None if its keyed digest is missing or
        wrong (with a key), or it carries one that cannot be checked (without a key)."""
        if self._key is not None:
            return unseal(self._key, namespace, kind, k, v)
        return None if is_sealed(v) else v

    def _seal(self, namespace: str, kind: str, k: str, a: Artifact) -> bytes:
        b = a.encode()
        return b if self._key is None else seal(self._key, namespace, kind, k, b)

    def put(self, namespace: str, kind: str, items: Mapping[str, Artifact]) -> None:
        """Write all items in one atomic batch."""
        check_namespace(namespace)
        enc = {k: self._seal(namespace, kind, k, a) for k, a in items.items()}
        self.store.put_many(namespace, kind, enc)
        with self._lock:
            self.stats.puts += len(enc)
            self.stats.bytes_written += sum(len(v) for v in enc.values())
            self._bump("puts", len(enc))

    def note_near_hit(self) -> None:
        with self._lock:
            self.stats.near_hits += 1
            self._bump("near_hits", 1)

    def _bump(self, name: str, n: int) -> None:
        if n:
            self._unflushed[name] = self._unflushed.get(name, 0) + n

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush > _FLUSH_EVERY:
            self.flush_stats()

    def flush_stats(self) -> None:
        """Add this process's unsaved counters to the store's persistent ones."""
        with self._lock:
            deltas, self._unflushed = self._unflushed, {}
            self._last_flush = time.monotonic()
        if deltas:
            try:
                self.store.add_counters(deltas)
            except CacheError:
                with self._lock:
                    for k, v in deltas.items():
                        self._bump(k, v)

    # -- near duplicates --------------------------------------------------------------

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from .embed import Embedder

            self._embedder = Embedder()
        return self._embedder

    def _embedding_kind(self) -> str:
        return f"{EMBEDDING_KIND}:{self.embedder.fingerprint}"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embedder.encode(texts), dtype=np.float32)

    def _index_path(self, namespace: str) -> Path | None:
        if self.index_dir is None:
            return None
        h = hashlib.sha256(f"{namespace}\0{self.embedder.fingerprint}".encode()).hexdigest()[:24]
        return self.index_dir / f"{h}.faiss"

    def index(self, namespace: str) -> Any:
        """The namespace's index: loaded if saved and consistent, else rebuilt from the store."""
        check_namespace(namespace)
        with self._lock:
            idx = self._indexes.get(namespace)
            if idx is not None:
                return idx
            from .index import NearIndex

            dim = self.embedder.dim
            p = self._index_path(namespace)
            if p is not None and p.exists():
                try:
                    idx = NearIndex.load(p, dim, **self._index_kw)
                except CacheError:
                    idx = None
            if idx is None:
                idx = self.rebuild_index(namespace)
            self._indexes[namespace] = idx
            return idx

    def rebuild_index(self, namespace: str) -> Any:
        """A fresh index from every embedding stored in ``namespace``."""
        from .index import NearIndex

        keys, vecs = [], []
        dim = self.embedder.dim
        store_kind = self._embedding_kind()
        for k, v in self.store.iter_kind(namespace, store_kind):
            body = self._open(namespace, store_kind, k, v)
            try:
                a = decode(body, kind=EMBEDDING_KIND) if body is not None else None
            except CorruptEntryError:
                a = None
            if a is None or a.arrays["v"].shape != (dim,):
                continue  # unauthenticated, corrupt, or of another dimension: not indexed
            keys.append(k)
            vecs.append(a.arrays["v"])
        arr = np.stack(vecs) if vecs else np.zeros((0, dim), np.float32)
        idx = NearIndex.build(keys, arr, dim, **self._index_kw)
        with self._lock:
            self._indexes[namespace] = idx
        return idx

    def near_add(self, namespace: str, keys: list[str], vecs: np.ndarray) -> None:
        """Store embeddings of newly cached segments and add them to the namespace index."""
        if not keys:
            return
        idx = self.index(namespace)
        vecs = np.asarray(vecs, dtype=np.float32)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self.put(
            namespace,
            self._embedding_kind(),
            {k: Artifact(EMBEDDING_KIND, {"v": v}) for k, v in zip(keys, vecs)},
        )
        with self._lock:
            idx.add(keys, vecs)

    def near_search(self, namespace: str, vecs: np.ndarray) -> list[tuple[str, float] | None]:
        """Best key and similarity in ``namespace`` for each vector (``None`` below threshold)."""
        idx = self.index(namespace)
        with self._lock:
            sims, keys = idx.search(vecs, 1)
        out: list[tuple[str, float] | None] = []
        for s, k in zip(sims[:, 0].tolist(), keys):
            out.append((k[0], float(s)) if k[0] is not None and s >= self.near_threshold else None)
        return out

    def save_indexes(self) -> None:
        """Persist every loaded index to ``index_dir`` (atomic replace)."""
        if self.index_dir is None:
            return
        with self._lock:
            for ns, idx in self._indexes.items():
                p = self._index_path(ns)
                if p is not None:
                    idx.save(p)

    # -- admin ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        self.flush_stats()
        out = dict(self.store.info())
        out["session"] = self.stats.as_dict()
        return out

    def clear(self, namespace: str | None = None) -> int:
        if namespace is not None:
            check_namespace(namespace)
        n = self.store.clear(namespace)
        with self._lock:
            if namespace is None:
                self._indexes.clear()
            else:
                self._indexes.pop(namespace, None)
        if self.index_dir is not None and self.index_dir.exists():
            for ns in [namespace] if namespace else []:
                p = self._index_path(ns)
                for q in (p, p.with_name(p.name + ".keys")) if p else ():
                    q.unlink(missing_ok=True)
            if namespace is None:
                for q in self.index_dir.glob("*.faiss*"):
                    q.unlink(missing_ok=True)
        return n

    def close(self) -> None:
        self.flush_stats()
        self.save_indexes()
        self.store.close()

    def __enter__(self) -> SegmentCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SegmentCache({self.store!r}, near={self.near})"


def as_cache(cache: Any) -> SegmentCache | None:
    """What a compressor's ``cache=`` argument may be: None/False (off), True (default
    SQLite file), a path, a Redis URL (``redis://``, ``rediss://``, ``unix://``), a Store,
    or a SegmentCache."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return SegmentCache()
    if isinstance(cache, SegmentCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return SegmentCache(cache)
    if isinstance(cache, Store):
        return SegmentCache(cache)
    raise CacheError(
        "cache must be a SegmentCache, a Store, a path, a Redis URL, True or None, "
        f"got {type(cache).__name__}"
    )


__all__ = ["CacheStats", "Eviction", "MemoryStore", "SegmentCache", "as_cache"]
