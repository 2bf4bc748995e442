"""Reading a corpus for ``ctxcomp batch``: JSONL and Parquet, validated row by row.

The input is read by the driver in a single pass: each row is checked (id, text, question),
duplicate ids and ids already in the output are set aside, and the rows to compress come out
as Arrow tables (``Chunk.table``) with the internal columns of
:mod:`ctxcomp.batch.schema` plus the row's metadata.

A bad row never stops the run: it becomes a :class:`Reject` (row, id, kind, reason).
Problems with the file as a whole (missing, unknown format, a text column that is not a
string type) raise :class:`~ctxcomp.InputError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .schema import (
    KEY,
    META,
    QUESTION,
    RESULT_COLUMNS,
    ROW,
    TEXT,
    Fields,
    IdCheck,
    Limits,
    Reject,
    check_string,
    file_format,
    parquet,
    pyarrow,
)


@dataclass
class Chunk:
    """One slice of the input: the rows to compress, the rejects, and what was skipped."""

    table: Any  # pyarrow.Table (internal columns + metadata), possibly empty
    rejects: list[Reject] = field(default_factory=list)
    rows: int = 0  # input rows in this slice
    skipped: int = 0  # rows whose id is already in the output


def scan(
    path: str | Path,
    fields: Fields,
    *,
    done: set[str] | None = None,
    limits: Limits | None = None,
    chunk_rows: int = 4096,
) -> Iterator[Chunk]:
    """Read ``path`` (JSONL or Parquet) in slices of up to ``chunk_rows`` input rows."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input file {str(path)!r} does not exist")
    ids = IdCheck(fields, done or set())
    lim = limits or Limits()
    if file_format(p) == "jsonl":
        return _scan_jsonl(p, fields, ids, lim, chunk_rows)
    return _scan_parquet(p, fields, ids, lim, chunk_rows)


def _internal_table(cols: dict[str, list[Any]], meta: Any = None) -> Any:
    pa = pyarrow()
    table = pa.table(
        {
            ROW: pa.array(cols[ROW], pa.int64()),
            KEY: pa.array(cols[KEY], pa.string()),
            TEXT: pa.array(cols[TEXT], pa.string()),
            QUESTION: pa.array(cols[QUESTION], pa.string()),
        }
    )
    if meta is None:
        return table.append_column(META, pa.array(cols[META], pa.string()))
    for name in meta.column_names:
        table = table.append_column(meta.schema.field(name), meta.column(name))
    return table


def _scan_jsonl(
    p: Path, fields: Fields, ids: IdCheck, lim: Limits, chunk_rows: int
) -> Iterator[Chunk]:
    cols: dict[str, list[Any]] = {ROW: [], KEY: [], TEXT: [], QUESTION: [], META: []}
    chunk = Chunk(table=None)
    with open(p, "rb") as f:
        for row, raw in enumerate(f):
            line = raw.rstrip(b"\r\n")
            if line.strip():  # blank lines hold no row
                chunk.rows += 1
                _jsonl_row(row, line, fields, ids, lim, cols, chunk)
            if chunk.rows >= chunk_rows:
                chunk.table = _internal_table(cols)
                yield chunk
                cols = {k: [] for k in cols}
                chunk = Chunk(table=None)
    chunk.table = _internal_table(cols)
    yield chunk


def _jsonl_row(
    row: int,
    line: bytes,
    fields: Fields,
    ids: IdCheck,
    lim: Limits,
    cols: dict[str, list[Any]],
    chunk: Chunk,
) -> None:
    try:
        text_line = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        chunk.rejects.append(
            Reject(
                row,
                _salvage_id(line, fields.id),
                "invalid_utf8",
                f"line {row + 1} is not valid UTF-8 at byte {exc.start}",
            )
        )
        return
    try:
        obj = json.loads(text_line)
    except ValueError as exc:
        chunk.rejects.append(
            Reject(row, None, "invalid_json", f"line {row + 1}: invalid JSON ({exc})")
        )
        return
    if not isinstance(obj, dict):
        chunk.rejects.append(
            Reject(
                row,
                None,
                "not_object",
                f"line {row + 1} is a JSON {type(obj).__name__}, not an object",
            )
        )
        return
    key, rej = ids.check(row, obj.get(fields.id))
    if key is None:
        if rej is None:
            chunk.skipped += 1
        else:
            chunk.rejects.append(rej)
        return
    ident = obj[fields.id]
    clash = sorted(set(obj) & set(RESULT_COLUMNS))
    if clash:
        chunk.rejects.append(
            Reject(row, ident, "field_clash", f"field {clash[0]!r} clashes with an output column")
        )
        return
    text, kind, why = check_string(obj.get(fields.text), fields.text, limit=lim.max_chars)
    if text is None:
        chunk.rejects.append(Reject(row, ident, kind, why))
        return
    question = None
    if fields.question is not None and obj.get(fields.question) is not None:
        question, kind, why = check_string(obj[fields.question], fields.question)
        if question is None:
            chunk.rejects.append(Reject(row, ident, kind, why))
            return
    del obj[fields.text]
    cols[ROW].append(row)
    cols[KEY].append(key)
    cols[TEXT].append(text)
    cols[QUESTION].append(question)
    cols[META].append(json.dumps(obj, ensure_ascii=False))


def _salvage_id(line: bytes, id_field: str) -> Any:
    """The id of a line with invalid UTF-8 elsewhere in it, when it can still be read."""
    try:
        obj = json.loads(line.decode("utf-8", errors="replace"))
        value = obj.get(id_field) if isinstance(obj, dict) else None
    except ValueError:
        return None
    return value if isinstance(value, (str, int)) and "\ufffd" not in str(value) else None


def _scan_parquet(
    p: Path, fields: Fields, ids: IdCheck, lim: Limits, chunk_rows: int
) -> Iterator[Chunk]:
    pa = pyarrow()
    pf = parquet().ParquetFile(p)
    schema = pf.schema_arrow
    _check_parquet_schema(p, schema, fields)
    meta_names = [n for n in schema.names if n != fields.text]
    start = 0
    for batch in pf.iter_batches(batch_size=chunk_rows):
        chunk = Chunk(table=None, rows=batch.num_rows)
        texts = _as_binary(batch.column(fields.text)).to_pylist()
        questions = (
            _as_binary(batch.column(fields.question)).to_pylist()
            if fields.question
            else [None] * batch.num_rows
        )
        cols: dict[str, list[Any]] = {ROW: [], KEY: [], TEXT: [], QUESTION: []}
        keep: list[int] = []
        for i, ident in enumerate(batch.column(fields.id).to_pylist()):
            row = start + i
            key, rej = ids.check(row, ident)
            if key is None:
                if rej is None:
                    chunk.skipped += 1
                else:
                    chunk.rejects.append(rej)
                continue
            text, kind, why = check_string(texts[i], fields.text, limit=lim.max_chars)
            question = None
            if text is not None and questions[i] is not None:
                question, kind, why = check_string(questions[i], fields.question or "")
            if text is None or kind:
                chunk.rejects.append(Reject(row, ident, kind, why))
                continue
            keep.append(i)
            cols[ROW].append(row)
            cols[KEY].append(key)
            cols[TEXT].append(text)
            cols[QUESTION].append(question)
        meta = pa.Table.from_batches([batch]).select(meta_names).take(pa.array(keep, pa.int64()))
        chunk.table = _internal_table(cols, meta)
        start += batch.num_rows
        yield chunk
    if start == 0:  # an empty file still gives the (empty) table its schema
        yield Chunk(
            table=_internal_table(
                {ROW: [], KEY: [], TEXT: [], QUESTION: []}, schema.empty_table().select(meta_names)
            )
        )


def _check_parquet_schema(p: Path, schema: Any, fields: Fields) -> None:
    pa = pyarrow()
    for name in [fields.id, fields.text] + ([fields.question] if fields.question else []):
        if name not in schema.names:
            raise InputError(f"{p.name}: no column {name!r} (columns: {schema.names})")
    clash = sorted(set(schema.names) & (set(RESULT_COLUMNS) | {ROW, KEY, TEXT, QUESTION, META}))
    if clash:
        raise InputError(f"{p.name}: column {clash[0]!r} clashes with an output column")
    for name in [fields.text] + ([fields.question] if fields.question else []):
        t = schema.field(name).type
        if not (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_null(t)
        ):
            raise InputError(f"{p.name}: column {name!r} is {t}, not a string column")
    t = schema.field(fields.id).type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        raise InputError(
            f"{p.name}: id column {fields.id!r} is {t}; ids must be strings or integers"
        )


def _as_binary(col: Any) -> Any:
    """A string column as raw bytes, so each value's UTF-8 is checked on its own."""
    pa = pyarrow()
    if pa.types.is_string(col.type):
        return col.cast(pa.binary())
    if pa.types.is_large_string(col.type):
        return col.cast(pa.large_binary())
    return col


__all__ = ["Chunk", "scan"]
