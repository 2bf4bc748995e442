"""What runs inside each Ray actor of ``ctxcomp batch``: one compressor, loaded once.

:class:`CompressActor` is the callable class given to Ray Data's ``map_batches``: Ray
constructs it once per actor (the model loads there), then calls it with Arrow batches of
rows. Each row comes back compressed (``ctxcomp.status`` = ``ok``) or rejected with the
reason (a :class:`~ctxcomp.CtxcompError` raised for that row, e.g. a budget that cannot be
met); any other exception fails the task, and Ray retries it (on another actor if this one
died).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import Budget, Compressor, CtxcompError
from .output import result_fields
from .resume import KIND, REASON, STATUS
from .schema import META, QUESTION, RESULT_COLUMNS, TEXT, pyarrow

Factory = Callable[[Mapping[str, Any]], Compressor]


def is_url(cache: str) -> bool:
    return "://" in cache


def claim_cache_slot(directory: str | os.PathLike[str]) -> tuple[Path, int]:
    """The first free per-actor SQLite file ``actor-<k>.sqlite`` in ``directory``.

    A slot is held by an exclusive ``flock`` on ``actor-<k>.lock`` for the life of the
    process (the kernel releases it when the process dies, so a restarted actor finds its
    slot again); the returned descriptor keeps it. Slots are stable across runs, so the
    next run over the same corpus finds its windows cached."""
    import fcntl

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:
        fd = os.open(d / f"actor-{k}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            k += 1
            continue
        return d / f"actor-{k}.sqlite", fd


def set_threads(threads: int) -> None:
    """CPU threads of the model runtime (torch; ONNX Runtime reads torch's) for the calling
    thread: OpenMP keeps the setting per thread, and Ray Data calls an actor from a thread
    other than the one that constructed it."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only settable before any parallel work
        torch.set_num_interop_threads(1)


class CompressActor:
    """Ray Data callable class: compresses the rows of each Arrow batch it is given."""

    def __init__(
        self,
        config: Mapping[str, Any],
        budget: Budget,
        threads: int,
        cache: str | None = None,
        rows_per_call: int = 1,
        factory: Factory | None = None,
    ) -> None:
        set_threads(threads)
        cfg = dict(config)
        self._slot = -1
        if cache is not None:
            if is_url(cache):
                cfg["cache"] = cache
            else:
                path, self._slot = claim_cache_slot(cache)
                cfg["cache"] = str(path)
        if factory is None:
            from .. import PipelineConfig, build_pipeline

            self.compressor: Compressor = build_pipeline(PipelineConfig.from_mapping(cfg))
        else:
            self.compressor = factory(cfg)
        self.budget = budget
        self.rows_per_call = rows_per_call
        self.threads = threads
        self._local = threading.local()

    def __call__(self, batch: Any) -> Any:
        if not getattr(self._local, "threads_set", False):
            set_threads(self.threads)
            self._local.threads_set = True
        return compress_table(self.compressor, batch, self.budget, self.rows_per_call)


def _groups(questions: list[str | None], size: int) -> Iterator[list[int]]:
    """Runs of consecutive rows with the same question, at most ``size`` rows each."""
    group: list[int] = []
    for i, q in enumerate(questions):
        if group and (len(group) >= size or questions[group[0]] != q):
            yield group
            group = []
        group.append(i)
    if group:
        yield group


def compress_table(comp: Compressor, batch: Any, budget: Budget, rows_per_call: int = 1) -> Any:
    """Compress every row of an internal batch (see :mod:`ctxcomp.batch.schema`).

    With ``rows_per_call`` 1 (the default) each row is one ``compress`` call, exactly what
    ``ctxcomp.compress`` gives for that text; more rows per ``compress_batch`` call share
    model batches (faster on GPUs), and a backend whose numbers depend on the batch's shape
    (bf16, fp16) may then keep a slightly different set of tokens."""
    pa = pyarrow()
    texts = batch.column(TEXT).to_pylist()
    questions = batch.column(QUESTION).to_pylist()
    out: list[dict[str, Any]] = [{} for _ in texts]
    for group in _groups(questions, max(1, rows_per_call)):
        q = questions[group[0]]
        results: list[Any]
        try:
            results = comp.compress_batch([texts[i] for i in group], budget=budget, question=q)
        except CtxcompError as exc:  # find the row at fault; the others still count
            results = [exc] if len(group) == 1 else [_one(comp, texts[i], budget, q) for i in group]
        for i, r in zip(group, results):
            out[i] = _reject(r) if isinstance(r, CtxcompError) else _row(r, budget)
    table = batch.drop_columns([TEXT, QUESTION])
    table = table.append_column(STATUS, pa.array([r[STATUS] for r in out], pa.string()))
    table = table.append_column(KIND, pa.array([r.get(KIND) for r in out], pa.string()))
    table = table.append_column(REASON, pa.array([r.get(REASON) for r in out], pa.string()))
    for name, typ in result_fields():
        table = table.append_column(name, pa.array([r.get(name) for r in out], typ))
    if META in table.column_names:  # keep the metadata last
        table = table.select([n for n in table.column_names if n != META] + [META])
    return table


def _one(comp: Compressor, text: str, budget: Budget, question: str | None) -> Any:
    try:
        return comp.compress(text, budget=budget, question=question)
    except CtxcompError as exc:
        return exc


def _reject(exc: CtxcompError) -> dict[str, Any]:
    return {STATUS: "rejected", KIND: "compress_error", REASON: f"{type(exc).__name__}: {exc}"}


def _row(r: Any, budget: Budget) -> dict[str, Any]:
    row = {
        STATUS: "ok",
        "compressed_text": r.text,
        "original_tokens": r.original_tokens,
        "compressed_tokens": r.compressed_tokens,
        "target_tokens": r.target_tokens,
        "kept_spans": [[s.start, s.end] for s in r.spans],
        "notes": list(r.notes),
        "config_hash": r.config_hash,
        "budget": str(budget),
    }
    assert set(row) == {STATUS, *RESULT_COLUMNS}
    return row


__all__ = ["CompressActor", "claim_cache_slot", "compress_table", "set_threads"]
