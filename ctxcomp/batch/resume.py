"""Exactly-once output for ``ctxcomp batch``: committed parts, resume, and the final merge.

While a run is going, results are committed by the driver only, as part files in a work
directory next to the output (``OUT.ctxcomp-batch/``)::

    state.json              budget, fields and pipeline config of the run (resume checks it)
    part-<run>-<seq>.parquet  committed rows: written to a temporary name, fsynced, renamed
    scan-rejects.jsonl      rows rejected while reading the input (rewritten by every run)

A part is either absent or complete (rename is atomic), so a kill at any moment leaves no
half row. A row's id is in at most one part: the driver drops any id it has already
committed. The ids already done (the output file's, plus every part's) are skipped by the
next run. :func:`finish` merges output + parts into a new output file (temporary name, then
rename), writes the rejects file, and removes the work directory; a kill between those steps
is repaired by the next run (ids already in the output are never taken from a part twice).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .schema import KEY, RESULT_COLUMNS, file_format, parquet, pyarrow

STATUS, KIND, REASON = "ctxcomp.status", "ctxcomp.kind", "ctxcomp.reason"
SUFFIX = ".ctxcomp-batch"


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)``, fsync the file, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


class WorkDir:
    """The work directory of one output file: its state and committed parts."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.with_name(output.name + SUFFIX)
        self.run = time.strftime("%Y%m%d%H%M%S")
        self.seq = 0

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet")) if self.exists else []

    def open(self, state: dict[str, Any]) -> None:
        """Create the directory, or check that an earlier run's state matches ``state``."""
        f = self.path / "state.json"
        if f.is_file():
            old = json.loads(f.read_text(encoding="utf-8"))
            diff = sorted(k for k in set(old) | set(state) if old.get(k) != state.get(k))
            if diff:
                raise InputError(
                    f"{self.path.name} holds an unfinished run with different settings "
                    f"({', '.join(f'{k}: {old.get(k)!r} now {state.get(k)!r}' for k in diff)}); "
                    "re-run with the same settings to resume, or pass --overwrite to start over"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.tmp-*"):  # a killed writer's temporary file
            stale.unlink(missing_ok=True)
        if not f.is_file():
            atomic_write(f, lambda t: t.write_text(json.dumps(state, indent=1), encoding="utf-8"))

    def commit(self, table: Any) -> Path:
        """Write ``table`` as the next part, atomically."""
        pq = parquet()
        self.seq += 1
        path = self.path / f"part-{self.run}-{self.seq:06d}.parquet"
        atomic_write(path, lambda t: pq.write_table(table, t))
        return path

    def done_keys(self) -> set[str]:
        """Ids of every committed row (compressed or rejected while compressing)."""
        pq = parquet()
        keys: set[str] = set()
        for p in self.parts():
            keys.update(pq.read_table(p, columns=[KEY]).column(KEY).to_pylist())
        return keys

    @property
    def scan_rejects(self) -> Path:
        return self.path / "scan-rejects.jsonl"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def read_output(output: Path, id_field: str) -> tuple[set[str], str | None, str | None]:
    """(ids, config hash, budget) of an existing output file; empty when there is none.

    Refuses a file that is not a ``ctxcomp batch`` output: it is never overwritten."""
    if not output.exists():
        return set(), None, None
    fmt = file_format(output)
    pa = pyarrow()
    if fmt == "parquet":
        try:
            schema = parquet().read_schema(output)
        except (OSError, pa.ArrowInvalid) as exc:
            raise _not_ours(output, str(exc)) from exc
        need = [id_field, "config_hash", "budget"]
        if not set(RESULT_COLUMNS) <= set(schema.names) or id_field not in schema.names:
            raise _not_ours(output, f"columns {schema.names}")
        t = parquet().read_table(output, columns=need)
        ids = {str(v) for v in t.column(id_field).to_pylist()}
        first = t.slice(0, 1).to_pylist()
    else:
        ids, first = set(), []
        with open(output, encoding="utf-8") as f:
            for n, line in enumerate(f):
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise _not_ours(output, f"line {n + 1} is not JSON") from exc
                if (
                    not isinstance(obj, dict)
                    or not set(RESULT_COLUMNS) <= set(obj)
                    or id_field not in obj
                ):
                    raise _not_ours(output, f"line {n + 1} is not a ctxcomp batch row")
                ids.add(str(obj[id_field]))
                if not first:
                    first = [obj]
    if not first:
        return ids, None, None
    return ids, first[0]["config_hash"], first[0]["budget"]


def _not_ours(output: Path, why: str) -> InputError:
    return InputError(
        f"output {str(output)!r} exists and is not a ctxcomp batch output ({why}): "
        "refusing to touch it; choose another output path"
    )


def remove_previous(output: Path, rejects: Path, id_field: str) -> None:
    """``--overwrite``: delete an earlier run's output, rejects and work directory."""
    read_output(output, id_field)  # raises unless the file is ours
    output.unlink(missing_ok=True)
    rejects.unlink(missing_ok=True)
    WorkDir(output).remove()


__all__ = ["KIND", "REASON", "STATUS", "SUFFIX", "WorkDir", "atomic_write", "read_output"]
