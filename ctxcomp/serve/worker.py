"""Where compression runs: worker processes (default) or threads of the server process.

Compression is CPU work in Python, numpy, tokenizers and torch; in a thread of the server
process it holds the GIL for much of the time and slows every other request's I/O. In a
worker process (``compress_in = "process"``, started with ``spawn``) the server's event
loop only moves bytes. A job is plain data in and out (:class:`JobSpec`,
:class:`JobResult`); each worker process keeps its own :class:`Pipelines`.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ctxcomp

from .pipelines import Pipelines


@dataclass(frozen=True)
class JobSpec:
    """Compress ``texts`` (one conversation's chosen parts) to ``target`` tokens, counted
    part by part with ``reader``."""

    settings: dict[str, Any]  # pipeline settings (JSON-serialisable)
    namespace: str
    texts: tuple[str, ...]
    target: int
    question: str | None
    reader: str
    placeholder: str  # the text of a part the compressor dropped whole


@dataclass(frozen=True)
class JobResult:
    pieces: tuple[str, ...]
    tokens: int  # reader tokens of the pieces, summed
    loaded: int  # compressors loaded in the process that ran the job


def run_job(pipelines: Pipelines, spec: JobSpec) -> JobResult:
    """The compressor holds the target over the parts joined into one text; counted part by
    part (as the upstream sees them) a few tokens can differ, so the target is lowered by
    any excess and the call repeated (cheap: the segment cache has the scores)."""
    loaded = pipelines.get(spec.settings)
    reader = ctxcomp.get_tokenizer(spec.reader)
    docs = [ctxcomp.Document(t) for t in spec.texts]
    target = spec.target
    for _ in range(4):
        res = loaded.compress(spec.namespace, docs, target_tokens=target, question=spec.question)
        pieces = tuple(d.text if d.text.strip() else spec.placeholder for d in res.documents)
        used = sum(reader.count(t) for t in pieces)
        if used <= spec.target or target <= 1:
            break
        target = max(1, target - (used - spec.target))
    return JobResult(pieces, used, pipelines.loaded)


def warm(pipelines: Pipelines, settings: dict[str, Any], namespace: str) -> int:
    """Build a pipeline and run it once (model, tokenizers and ranker loaded)."""
    loaded = pipelines.get(settings)
    docs = ["Warm-up text for the proxy's compressor. " * 8, "A second document. " * 8]
    loaded.compress(namespace, docs, ratio=0.5, question="What is warmed up?")
    return pipelines.loaded


# -- in a worker process ---------------------------------------------------------------

_PIPELINES: Pipelines | None = None


def _init(max_loaded: int) -> None:
    global _PIPELINES
    _PIPELINES = Pipelines(max_loaded)
    threading.Thread(target=_exit_with_parent, name="ctxcomp-parent-watch", daemon=True).start()


def _exit_with_parent() -> None:
    """A worker never outlives the server (killed, crashed or stopped): it holds a model."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)


def _pipelines() -> Pipelines:
    assert _PIPELINES is not None, "worker process not initialised"
    return _PIPELINES


def process_jobs(specs: Sequence[JobSpec]) -> list[JobResult]:
    return [run_job(_pipelines(), s) for s in specs]


def process_warm(settings: dict[str, Any], namespace: str) -> int:
    return warm(_pipelines(), settings, namespace)


class Workers:
    """Runs jobs in ``n`` worker processes or threads; a crashed process pool is replaced."""

    def __init__(self, mode: str, n: int, max_loaded: int) -> None:
        self.mode, self.n, self.max_loaded = mode, n, max_loaded
        self.pipelines = Pipelines(max_loaded) if mode == "thread" else None
        self.executor = self._new()

    def _new(self) -> Executor:
        if self.mode == "thread":
            return ThreadPoolExecutor(self.n, thread_name_prefix="ctxcomp-compress")
        ctx = multiprocessing.get_context("spawn")  # never fork a process with threads
        return ProcessPoolExecutor(
            self.n, mp_context=ctx, initializer=_init, initargs=(self.max_loaded,)
        )

    def submit(self, fn: str, *args: Any) -> Any:
        """Submit ``jobs(specs)`` or ``warm(settings, namespace)``; a concurrent future."""
        if self.pipelines is not None:
            pipes = self.pipelines
            if fn == "jobs":
                return self.executor.submit(lambda: [run_job(pipes, s) for s in args[0]])
            return self.executor.submit(warm, pipes, *args)
        return self.executor.submit(process_jobs if fn == "jobs" else process_warm, *args)

    def restart(self) -> None:
        """Replace a broken process pool (a worker died: out of memory, killed)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
