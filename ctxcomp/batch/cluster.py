"""Ray for one ``ctxcomp batch`` run: connect (or start), size the actor pool, stream results.

Ray is started in-process (``ray.init(num_cpus=...)``, no dashboard) unless a cluster address
is given, or Ray is already initialised (then it is reused and left running). It is started
lazily, on the first block to compress: a run with nothing left to do never starts it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import Budget, InputError, PipelineConfig
from .._deps import require
from .options import RunOptions
from .report import BatchSummary
from .worker import CompressActor, Factory


class RaySession:
    """Ray for one run; shut down at exit only if this run started it."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.ray: Any = None
        self.started = False

    def __enter__(self) -> RaySession:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.ray.shutdown()

    def connect(self) -> Any:
        if self.ray is not None:
            return self.ray
        ray = require("ray", "batch")
        require("ray.data", "batch")
        if not ray.is_initialized():
            kw: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            if self.opts.ray_address:
                ray.init(address=self.opts.ray_address, **kw)
            else:
                cpus = self.opts.num_cpus or os.cpu_count() or 1
                ray.init(num_cpus=cpus, include_dashboard=False, **kw)
            self.started = True
        self.ray = ray
        return ray

    def put(self, table: Any) -> Any:
        """Put one block in the object store (starting Ray on the first)."""
        return self.connect().put(table)

    def resources(self) -> tuple[int, int, float]:
        """(actors, threads per actor, GPUs per actor) for this cluster."""
        res = self.connect().cluster_resources()
        cpus, gpus = int(res.get("CPU", 1)), float(res.get("GPU", 0))
        o = self.opts
        gpa = o.gpus_per_actor if o.gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
        if o.actors is not None:
            actors = o.actors
        elif gpa > 0:
            actors = max(1, int(gpus // gpa))
        else:
            actors = max(1, cpus // (o.threads_per_actor or 1))
        threads = o.threads_per_actor or max(1, cpus // actors)
        if not o.ray_address and actors * threads > cpus:
            raise InputError(
                f"{actors} actors x {threads} threads need {actors * threads} CPUs; "
                f"this Ray has {cpus} (lower --actors / --threads-per-actor)"
            )
        return actors, threads, gpa

    def run(
        self,
        refs: list[Any],
        pipeline: PipelineConfig,
        budget: Budget,
        factory: Factory | None,
        summary: BatchSummary,
    ) -> Iterator[Any]:
        """Result tables (internal columns) as the actor pool produces them, in input order."""
        ray = self.connect()
        actors, threads, gpus = self.resources()
        summary.actors, summary.threads_per_actor, summary.gpus_per_actor = actors, threads, gpus
        o = self.opts
        with _data_context(ray):
            ds = ray.data.from_arrow_refs(refs).map_batches(
                CompressActor,
                fn_constructor_kwargs={
                    "config": pipeline.to_dict(),
                    "budget": budget,
                    "threads": threads,
                    "cache": o.cache,
                    "rows_per_call": o.rows_per_call,
                    "factory": factory,
                },
                batch_size=o.batch_rows,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=threads,
                num_gpus=gpus or None,
                udf_modifying_row_count=False,
            )
            yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)


@contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """A Ray Data context for the run: our own progress instead of Ray Data's bars and log
    lines, and results in input order. Ray Data's defaults stay: failed actors are restarted
    and their tasks retried without limit."""
    with warnings.catch_warnings():  # Ray's own default context warns about its own fields
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ray.data.DataContext.get_current().copy()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    log = logging.getLogger("ray.data")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with ray.data.DataContext.current(ctx):
            yield
    finally:
        log.setLevel(level)


__all__ = ["RaySession"]
