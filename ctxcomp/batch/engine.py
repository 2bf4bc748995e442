"""``ctxcomp batch`` on Ray Data: read, compress on an actor pool, commit, merge.

1. The driver reads the input once (:func:`ctxcomp.batch.io.scan`): bad rows go to the
   rejects file, ids already done are skipped, the rest are put in Ray's object store as
   Arrow blocks.
2. ``map_batches`` runs :class:`~ctxcomp.batch.worker.CompressActor` on a fixed pool of
   actors (model loaded once per actor; ``num_cpus`` = threads per actor, torch set to match;
   ``num_gpus`` per actor when the cluster has GPUs). Ray Data restarts a dead actor and
   retries its task, so a killed worker's rows are computed again, never lost.
3. The driver takes results as they stream out and commits them in parts
   (:class:`~ctxcomp.batch.resume.WorkDir`): every id once, atomically. Ctrl-C or a failure
   still commits what was received.
4. At the end the parts are merged into the output file and the rejects file is written.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import Budget, InputError, PipelineConfig
from .._deps import require
from .cluster import RaySession
from .io import scan
from .options import RunOptions
from .output import finish
from .report import BatchSummary, Reporter
from .resume import STATUS, WorkDir, read_output, remove_previous
from .schema import KEY, Fields, Limits, compute, file_format
from .worker import Factory


def run_batch(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    ratio: float | None = None,
    target_tokens: int | None = None,
    fields: Fields | None = None,
    config: PipelineConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    options: RunOptions | None = None,
    rejects: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    compressor_factory: Factory | None = None,
) -> BatchSummary:
    """Compress every row of ``input`` (JSONL or Parquet) into ``output``; resumable.

    ``config`` is a :class:`~ctxcomp.PipelineConfig`, a mapping or a JSON/TOML file (default:
    the embedded default pipeline). Re-running with the same arguments skips the ids already
    in ``output`` (or committed by an interrupted run). ``compressor_factory(config_mapping)``
    replaces :func:`ctxcomp.build_pipeline` in the actors (it must be picklable).
    """
    started = time.monotonic()
    for module in ("pyarrow", "ray"):  # fail before any work, with the install hint
        if importlib.util.find_spec(module) is None:
            require(module, "batch")
    budget = Budget.of(ratio, target_tokens)
    fields = fields or Fields()
    opts = options or RunOptions()
    src, out = Path(input), Path(output)
    file_format(src), file_format(out)
    if not src.is_file():
        raise InputError(f"input file {str(input)!r} does not exist")
    if src.resolve() == out.resolve():
        raise InputError("the output must be a different file from the input")
    rej = Path(rejects) if rejects is not None else out.with_name(out.stem + ".rejects.jsonl")
    if rej.resolve() in (src.resolve(), out.resolve()):
        raise InputError(f"the rejects file {str(rej)!r} would overwrite the input or output")
    pipeline = _pipeline(config)
    if overwrite:
        remove_previous(out, rej, fields.id)
    base_ids, base_hash, base_budget = read_output(out, fields.id)
    if base_budget is not None and base_budget != str(budget):
        raise InputError(
            f"{out.name} was compressed with {base_budget}, this run asks for {budget}: "
            "use the same budget to resume, --overwrite, or another output file"
        )
    work = WorkDir(out)
    work.open(
        {
            "budget": str(budget),
            "fields": [fields.id, fields.text, fields.question],
            "pipeline": pipeline.to_dict(),
        }
    )
    summary = BatchSummary(str(src), str(out), str(rej))
    report = Reporter(progress)
    with RaySession(opts) as session:
        done = base_ids | work.done_keys()
        with report.status(f"reading {src.name}…"):
            blocks = _read(src, fields, done, opts, work, session, summary)
        if blocks.refs:
            commit = _Committer(work, done, base_hash or _parts_hash(work), opts, report, summary)
            try:
                with report.rows(blocks.rows):
                    for table in session.run(
                        blocks.refs, pipeline, budget, compressor_factory, summary
                    ):
                        commit.add(table)
                commit.end()
            finally:
                commit.flush()
                if commit.failed:
                    report.note(
                        f"[yellow]interrupted:[/] {summary.compressed:,} rows committed "
                        f"in {work.path.name}; run the same command again to resume"
                    )
    with report.status("writing the output…"):
        merged = finish(work, out, rej, fields.id, base_ids)
    summary.output_rows = merged.rows
    summary.rejected = merged.rejects
    summary.reject_kinds = dict(merged.reject_kinds)
    summary.seconds = time.monotonic() - started
    report.summary(summary)
    return summary


def _pipeline(config: Any) -> PipelineConfig:
    if config is None:
        return PipelineConfig()
    if isinstance(config, PipelineConfig):
        return config
    if isinstance(config, Mapping):
        return PipelineConfig.from_mapping(config)
    return PipelineConfig.from_file(config)


def _parts_hash(work: WorkDir) -> str | None:
    """The config hash of rows an interrupted run committed, if any."""
    pq, pc = require("pyarrow.parquet", "batch"), compute()
    for p in work.parts():
        t = pq.read_table(p, columns=[STATUS, "config_hash"])
        t = t.filter(pc.equal(t.column(STATUS), "ok"))
        if t.num_rows:
            return str(t.column("config_hash")[0].as_py())
    return None


@dataclass
class _Blocks:
    refs: list[Any]
    rows: int = 0


def _read(
    src: Path,
    fields: Fields,
    done: set[str],
    opts: RunOptions,
    work: WorkDir,
    session: RaySession,
    summary: BatchSummary,
) -> _Blocks:
    """Scan the input: rejects to the work dir, fresh rows to the object store in blocks."""
    import json

    pa = require("pyarrow", "batch")
    blocks = _Blocks(refs=[])
    block_rows = opts.batch_rows  # one block per actor call: even spread, small retries
    with open(work.scan_rejects, "w", encoding="utf-8") as rej:
        for chunk in scan(src, fields, done=done, limits=Limits(opts.max_chars)):
            summary.input_rows += chunk.rows
            summary.skipped += chunk.skipped
            for r in chunk.rejects:
                rej.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            t = chunk.table
            for start in range(0, t.num_rows, block_rows):
                # a copy of just these rows (a slice would carry the whole chunk's buffers)
                rows = pa.array(range(start, min(start + block_rows, t.num_rows)), pa.int64())
                blocks.refs.append(session.put(t.take(rows)))
            blocks.rows += t.num_rows
    return blocks


class _Committer:
    """Takes result tables from the stream, commits them in parts, counts what was done."""

    def __init__(
        self,
        work: WorkDir,
        done: set[str],
        expected_hash: str | None,
        opts: RunOptions,
        report: Reporter,
        summary: BatchSummary,
    ) -> None:
        self.work, self.done, self.hash = work, done, expected_hash
        self.opts, self.report, self.summary = opts, report, summary
        self.buffer: list[Any] = []
        self.buffered = 0
        self.last = self.start = time.monotonic()
        self.first: float | None = None
        self.blocks = 0
        self.failed = True  # until the stream ends normally

    def add(self, table: Any) -> None:
        pa, pc = require("pyarrow", "batch"), compute()
        keys = table.column(KEY).to_pylist()
        fresh = [i for i, k in enumerate(keys) if k not in self.done]
        if len(fresh) < len(keys):  # never twice, whatever the engine delivers
            table = table.take(pa.array(fresh, pa.int64()))
            keys = [keys[i] for i in fresh]
        ok = table.filter(pc.equal(table.column(STATUS), "ok"))
        hashes = set(ok.column("config_hash").to_pylist())
        if self.hash is not None:
            hashes.add(self.hash)
        if len(hashes) > 1:
            raise InputError(
                f"rows with different config hashes {sorted(hashes)}: the pipeline differs from "
                "the one that wrote the output so far (model files changed?); use --overwrite "
                "or another output file"
            )
        self.hash = next(iter(hashes), None)
        self.done.update(keys)
        self.buffer.append(table)
        self.buffered += table.num_rows
        self.summary.compressed += ok.num_rows
        self.summary.original_tokens += int(pc.sum(ok.column("original_tokens")).as_py() or 0)
        self.summary.compressed_tokens += int(pc.sum(ok.column("compressed_tokens")).as_py() or 0)
        self.summary.config_hash = self.hash
        self.report.advance(len(keys))
        # steady throughput: from the first result on, without the first wave of blocks (one
        # per actor, computed while the clock was not running yet)
        now = time.monotonic()
        self.blocks += 1
        if self.first is None:
            self.first = now
            self.summary.startup_seconds = now - self.start
        if self.blocks > max(1, self.summary.actors):
            self.summary.steady_rows += len(keys)
            self.summary.steady_seconds = now - self.first
        if (
            self.buffered >= self.opts.commit_rows
            or time.monotonic() - self.last >= self.opts.commit_seconds
        ):
            self.flush()

    def end(self) -> None:
        self.failed = False

    def flush(self) -> None:
        if self.buffered:
            pa = require("pyarrow", "batch")
            self.work.commit(pa.concat_tables(self.buffer, promote_options="permissive"))
        self.buffer, self.buffered, self.last = [], 0, time.monotonic()


__all__ = ["RunOptions", "run_batch"]
