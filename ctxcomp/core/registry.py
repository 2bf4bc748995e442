"""Name -> factory registries for compressors, rankers and backends.

The config builder, the CLI and the proxy create things by name through these, so a
name means the same everywhere. Built-in entries are registered as ``"module:attribute"``
strings and imported only when created (registering never imports torch). Third-party
packages add their own through entry points (groups ``ctxcomp.compressors``,
``ctxcomp.rankers``, ``ctxcomp.backends``) or by calling :meth:`Registry.register`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import InputError

T = TypeVar("T")
Factory = Callable[..., Any]


@dataclass(frozen=True)
class Entry:
    name: str
    target: str | Factory  # "package.module:attribute", or the factory itself
    summary: str = ""

    def load(self) -> Factory:
        if not isinstance(self.target, str):
            return self.target
        module, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


class Registry(Generic[T]):
    """A table of named factories of one kind of thing (``kind`` is used in messages)."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._plugins_loaded = entry_point_group is None

    def register(
        self,
        name: str,
        target: str | Factory | None = None,
        *,
        summary: str = "",
        replace: bool = False,
    ) -> Any:
        """Register ``target`` under ``name``; without a target, return a class/function
        decorator that registers what it decorates. A taken name is an error unless
        ``replace=True``."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise InputError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(t: str | Factory) -> Any:
            with self._lock:
                if name in self._entries and not replace:
                    raise InputError(f"{self.kind} {name!r} is already registered")
                self._entries[name] = Entry(name, t, summary)
            return t

        return add if target is None else add(target)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        from importlib.metadata import entry_points

        with self._lock:
            self._plugins_loaded = True
            assert self._group is not None
            for ep in entry_points(group=self._group):
                self._entries.setdefault(ep.name, Entry(ep.name, ep.value))

    def names(self) -> tuple[str, ...]:
        self._load_plugins()
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def entry(self, name: str) -> Entry:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise InputError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}"
            ) from None

    def factory(self, name: str) -> Factory:
        """The factory registered under ``name`` (imported on first use)."""
        return self.entry(name).load()

    def create(self, name: str, /, *args: Any, **options: Any) -> T:
        """Call the factory registered under ``name`` with ``options``."""
        out: T = self.factory(name)(*args, **options)
        return out


compressors: Registry[Any] = Registry("compressor", "ctxcomp.compressors")
rankers: Registry[Any] = Registry("ranker", "ctxcomp.rankers")
backends: Registry[Any] = Registry("backend", "ctxcomp.backends")

# Built-in methods outside the text package (imported only when created).
compressors.register(
    "complm",
    "ctxcomp.latent.complm:SegmentCompressor",
    summary="CompLLM: concept embeddings per segment for a causal LM (latent), cached",
)
compressors.register(
    "c3",
    "ctxcomp.latent.cascade.compressor:CascadeCompressor",
    summary="C3: an encoder LM's latents per chunk for a decoder LM (latent), cached",
)
