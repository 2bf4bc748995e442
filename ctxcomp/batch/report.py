"""Progress (rows/s, ETA) and the final summary of a ``ctxcomp batch`` run, drawn with rich."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BatchSummary:
    """What a run did. Token counts and rates cover the rows compressed by this run."""

    input: str
    output: str
    rejects_file: str
    input_rows: int = 0  # rows read from the input
    skipped: int = 0  # rows whose id was already in the output (or in a committed part)
    compressed: int = 0  # rows compressed by this run
    rejected: int = 0  # rows in the rejects file
    reject_kinds: dict[str, int] = field(default_factory=dict)
    output_rows: int = 0  # rows in the output file after the run
    original_tokens: int = 0
    compressed_tokens: int = 0
    seconds: float = 0.0  # the whole run: reading, Ray and actor start-up, compressing, merging
    startup_seconds: float = 0.0  # from launching the actors to the first compressed block
    steady_rows: int = 0  # rows that came after the first block ...
    steady_seconds: float = 0.0  # ... and the time they took (actors warm)
    actors: int = 0
    threads_per_actor: int = 0
    gpus_per_actor: float = 0.0
    config_hash: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.compressed / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_rows_per_second(self) -> float:
        """Throughput once every actor is up (start-up excluded): what scales."""
        return self.steady_rows / self.steady_seconds if self.steady_seconds > 0 else 0.0

    @property
    def ratio(self) -> float | None:
        return self.compressed_tokens / self.original_tokens if self.original_tokens else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rows_per_second": self.rows_per_second,
            "steady_rows_per_second": self.steady_rows_per_second,
            "ratio": self.ratio,
        }


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Reporter:
    """Draws progress on stderr (or nothing, when ``enabled`` is False)."""

    def __init__(self, enabled: bool = True) -> None:
        from rich.console import Console

        self.enabled = enabled
        self.console = Console(stderr=True, soft_wrap=True)
        self._progress: Any = None
        self._task: Any = None
        self._first: tuple[float, float] | None = None

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with self.console.status(text):
            yield

    @contextlib.contextmanager
    def rows(self, total: int) -> Iterator[None]:
        """A bar over ``total`` rows with the rate and the time left."""
        if not self.enabled:
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(
            TextColumn("compressing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows  {task.fields[rate]}  {task.fields[eta]}"),
            console=self.console,
        ) as prog:
            self._progress = prog
            self._task = prog.add_task("rows", total=total, rate="starting actors…", eta="")
            self._first = None
            try:
                yield
            finally:
                self._progress = None

    def advance(self, n: int) -> None:
        """``n`` more rows done. The rate is measured from the first result on (so the
        actors' start-up does not count), over the whole run: steady, not bursty."""
        if self._progress is None:
            return
        self._progress.advance(self._task, n)
        task = self._progress.tasks[0]
        now = time.monotonic()
        if self._first is None:
            self._first = (now, task.completed)
            return
        t0, c0 = self._first
        if now - t0 <= 0 or task.completed <= c0:
            return
        rate = (task.completed - c0) / (now - t0)
        left = (task.total or 0) - task.completed
        self._progress.update(
            self._task, rate=f"{rate:,.1f} rows/s", eta=f"ETA {_clock(left / rate)}"
        )

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)

    def summary(self, s: BatchSummary) -> None:
        if not self.enabled:
            return
        from rich.table import Table

        t = Table(title="ctxcomp batch", show_header=False, title_justify="left")
        t.add_column(style="bold")
        t.add_column()
        t.add_row("input rows", f"{s.input_rows:,}")
        t.add_row("already done (skipped)", f"{s.skipped:,}")
        t.add_row("compressed now", f"{s.compressed:,}")
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(s.reject_kinds.items()))
        t.add_row("rejected", f"{s.rejected:,}" + (f"  ({kinds})" if kinds else ""))
        t.add_row("output rows", f"{s.output_rows:,}  → {s.output}")
        if s.rejected:
            t.add_row("rejects", s.rejects_file)
        ratio = f"  (ratio {s.ratio:.3f})" if s.ratio is not None else ""
        t.add_row("tokens in → out", f"{s.original_tokens:,} → {s.compressed_tokens:,}{ratio}")
        t.add_row("time", f"{s.seconds:.1f} s  ({s.rows_per_second:,.2f} rows/s)")
        if s.steady_seconds:
            t.add_row(
                "after start-up",
                f"{s.steady_rows_per_second:,.2f} rows/s (start-up {s.startup_seconds:.1f} s)",
            )
        if s.actors:
            gpus = f", {s.gpus_per_actor:g} GPU" if s.gpus_per_actor else ""
            t.add_row("actors", f"{s.actors} × {s.threads_per_actor} CPU thread(s){gpus}")
        self.console.print(t)


__all__ = ["BatchSummary", "Reporter"]
