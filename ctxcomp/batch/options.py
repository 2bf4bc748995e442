"""How a ``ctxcomp batch`` run uses Ray: actors, threads, GPUs, cache, commit cadence."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .schema import DEFAULT_MAX_CHARS


@dataclass(frozen=True)
class RunOptions:
    """How a batch run uses Ray. ``None`` means: chosen from the cluster's resources."""

    actors: int | None = None  # default: one per GPU, else CPUs // threads_per_actor
    threads_per_actor: int | None = None  # default: CPUs // actors (1 when actors is unset)
    gpus_per_actor: float | None = None  # default: 1 when the cluster has GPUs, else 0
    ray_address: str | None = None  # None: start Ray in this process
    num_cpus: int | None = None  # CPUs of the in-process Ray (default: os.cpu_count())
    cache: str | None = None  # redis:// URL shared by all actors, or a dir of per-actor files
    batch_rows: int = 16  # rows per actor call (map_batches batch_size)
    rows_per_call: int = 1  # rows per compress_batch call (1: each row as compress() does)
    max_chars: int = DEFAULT_MAX_CHARS
    commit_rows: int = 1000  # a part is committed every commit_rows rows ...
    commit_seconds: float = 30.0  # ... or every commit_seconds, whichever comes first

    def __post_init__(self) -> None:
        for name in ("actors", "threads_per_actor", "num_cpus"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise InputError(f"{name} must be at least 1, got {v}")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise InputError(f"gpus_per_actor must be >= 0, got {self.gpus_per_actor}")
        if min(self.batch_rows, self.rows_per_call, self.commit_rows) < 1:
            raise InputError("batch_rows, rows_per_call and commit_rows must be at least 1")


__all__ = ["RunOptions"]
