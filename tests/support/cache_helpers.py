"""Helpers shared by the cache tests."""

from __future__ import annotations

import copy
import socket


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens there afterwards)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingPredict:
    """Wraps a model's predict and counts the calls and tokens it was asked to score."""

    def __init__(self, predict):
        self.predict = predict
        self.calls = 0
        self.tokens = 0

    def __call__(self, windows, progress=None):
        self.calls += 1
        self.tokens += int(sum(w.size for w in windows))
        return self.predict(windows, progress=progress)


def counted(comp, cache, namespace: str = "default"):
    """A shallow copy of a session compressor (weights shared) using ``cache``, with a
    private model wrapper whose forward calls are counted."""
    c = copy.copy(comp)
    c.cache = cache
    c.namespace = namespace
    c._model = copy.copy(comp._model)
    c._model.predict = CountingPredict(comp._model.predict)
    return c, c._model.predict
