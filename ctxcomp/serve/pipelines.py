"""Compressors of the proxy: one per pipeline settings, shared by every tenant.

Tenants share a loaded model; their cache entries do not mix. Each compressor's segment
cache sits on a :class:`TenantStore`, a :class:`ctxcomp.cache.Store` that files every entry
under the namespace of the request being compressed (set, under the compressor's lock, for
the duration of one call; any access outside a call is refused).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ctxcomp

OFF = (None, False, "", "none", "off")


class TenantStore:
    """A store that puts every entry in the current tenant's namespace."""

    name = "tenant"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.namespace: str | None = None

    def _ns(self) -> str:
        if self.namespace is None:
            raise RuntimeError("ctxcomp serve: cache accessed outside a tenant's request")
        return self.namespace

    def get_many(self, namespace: str, kind: str, keys: Iterable[str]) -> dict[str, bytes]:
        return dict(self.inner.get_many(self._ns(), kind, keys))

    def put_many(self, namespace: str, kind: str, items: Mapping[str, bytes]) -> None:
        self.inner.put_many(self._ns(), kind, items)

    def delete(self, namespace: str, kind: str, keys: Iterable[str]) -> None:
        self.inner.delete(self._ns(), kind, keys)

    def iter_kind(self, namespace: str, kind: str) -> Iterator[tuple[str, bytes]]:
        return iter(self.inner.iter_kind(self._ns(), kind))

    def namespaces(self) -> list[str]:
        return [self._ns()]

    def clear(self, namespace: str | None = None) -> int:
        return int(self.inner.clear(self._ns()))

    def info(self) -> dict[str, Any]:
        return dict(self.inner.info())

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        self.inner.add_counters(deltas)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Loaded:
    """A compressor, the lock its calls take, and its tenant store (None: no cache)."""

    compressor: Any
    lock: threading.Lock
    store: TenantStore | None

    def compress(self, namespace: str, prompt: Any, **kwargs: Any) -> ctxcomp.CompressionResult:
        # one call at a time per compressor: the tenant is set for exactly this call, and
        # the model's tokenizers are not safe to share between threads
        with self.lock:
            if self.store is not None:
                self.store.namespace = namespace
            try:
                return self.compressor.compress(prompt, **kwargs)
            finally:
                if self.store is not None:
                    self.store.namespace = None


class Pipelines:
    """Compressors by settings, built on first use, least recently used out first."""

    def __init__(self, max_loaded: int) -> None:
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @staticmethod
    def normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
        """Pipeline settings with the proxy's cache default (the default SQLite file)."""
        s = dict(settings)
        s.pop("namespace", None)  # the tenant store decides
        if "cache" not in s:
            from ctxcomp.cache import default_cache_path

            s["cache"] = str(default_cache_path())
        if s["cache"] in OFF:
            s["cache"] = None
        return s

    def get(self, settings: Mapping[str, Any]) -> Loaded:
        """The compressor for ``settings`` (built in the calling thread when new)."""
        s = self.normalise(settings)
        key = json.dumps(s, sort_keys=True, default=str)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            build = self._building.setdefault(key, threading.Lock())
        with build:
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            loaded = self._build(s)
            with self._lock:
                self._loaded[key] = loaded
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
                self._building.pop(key, None)
        return loaded

    @property
    def loaded(self) -> int:
        """How many compressors are loaded."""
        with self._lock:
            return len(self._loaded)

    @staticmethod
    def _build(s: dict[str, Any]) -> Loaded:
        try:  # a server has no terminal for model loading bars
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        store = None
        if s["cache"] is not None:
            from ctxcomp.cache import SegmentCache, as_cache

            inner = as_cache(s["cache"])
            store = TenantStore(inner.store if inner is not None else None)
            s = {**s, "cache": SegmentCache(store)}
        comp = ctxcomp.build_pipeline(ctxcomp.PipelineConfig.from_mapping(s))
        return Loaded(comp, threading.Lock(), store)
