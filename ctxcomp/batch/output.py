"""The final merge of ``ctxcomp batch``: committed parts (+ an earlier output) -> OUT, rejects.

Output rows: the id field first, then :data:`~ctxcomp.batch.schema.RESULT_COLUMNS`, then the
input's other fields (its metadata, the question field included; the input text is not
repeated). JSONL -> JSONL keeps every value as it was; Parquet -> Parquet keeps the column
types; JSONL -> Parquet infers one type per field over the whole output (a field whose values
cannot share a type, e.g. numbers in some rows and strings in others, is stored as JSON
text); Parquet -> JSONL writes dates and times as ISO strings, decimals as strings and bytes
as base64.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .resume import KIND, REASON, STATUS, WorkDir, atomic_write
from .schema import KEY, META, RESULT_COLUMNS, ROW, compute, file_format, parquet, pyarrow

_INTERNAL = {ROW, KEY, META, STATUS, KIND, REASON}


@dataclass
class Merged:
    rows: int = 0  # rows in the output file
    added: int = 0  # rows taken from this run's parts
    rejects: int = 0
    reject_kinds: Counter[str] = field(default_factory=Counter)


def finish(work: WorkDir, output: Path, rejects: Path, id_field: str, base_ids: set[str]) -> Merged:
    """Merge ``output`` (if any) and the work directory's parts into ``output``; write
    ``rejects``; remove the work directory. Ids in ``base_ids`` (the existing output's) are
    never taken from a part again."""
    parts = work.parts()
    merged = Merged(rows=len(base_ids))
    if parts:
        if file_format(output) == "jsonl":
            atomic_write(
                output, lambda t: _write_jsonl(t, output, parts, id_field, base_ids, merged)
            )
        else:
            atomic_write(
                output, lambda t: _write_parquet(t, output, parts, id_field, base_ids, merged)
            )
    elif not output.exists():  # nothing to compress (every row rejected, or an empty input)
        atomic_write(output, lambda t: _write_empty(t, output, id_field))
    rows = _reject_rows(work, parts, id_field)
    merged.rejects = len(rows)
    merged.reject_kinds.update(r["kind"] for r in rows)
    text = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows)
    atomic_write(rejects, lambda t: t.write_text(text, encoding="utf-8"))
    work.remove()
    return merged


def _ok_rows(parts: list[Path], base_ids: set[str]) -> Iterator[Any]:
    """Each part's compressed rows, without ids already output (each id once)."""
    pa, pc = pyarrow(), compute()
    seen = set(base_ids)
    for p in parts:
        t = parquet().read_table(p)
        t = t.filter(pc.equal(t.column(STATUS), "ok"))
        keys = t.column(KEY).to_pylist()
        fresh = [i for i, k in enumerate(keys) if k not in seen]
        seen.update(keys)
        if fresh:
            yield t.take(pa.array(fresh, pa.int64()))


def _metas(t: Any) -> list[dict[str, Any]]:
    """Each row's input fields other than the text (JSONL: parsed; Parquet: native)."""
    if META in t.column_names:
        return [json.loads(m) for m in t.column(META).to_pylist()]
    names = [n for n in t.column_names if n not in _INTERNAL and n not in RESULT_COLUMNS]
    return list(t.select(names).to_pylist())


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime.date, datetime.time, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, datetime.timedelta):
        return v.total_seconds()
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


def _write_jsonl(
    tmp: Path, output: Path, parts: list[Path], id_field: str, base_ids: set[str], merged: Merged
) -> None:
    with open(tmp, "wb") as out:
        if output.exists():
            with open(output, "rb") as base:
                for line in base:
                    out.write(line if line.endswith(b"\n") else line + b"\n")
        for t in _ok_rows(parts, base_ids):
            results = t.select(list(RESULT_COLUMNS)).to_pylist()
            for res, meta in zip(results, _metas(t)):
                row = {id_field: meta.pop(id_field), **res, **meta}
                out.write(
                    json.dumps(row, ensure_ascii=False, default=_json_default).encode() + b"\n"
                )
                merged.added += 1
    merged.rows += merged.added


def _write_parquet(
    tmp: Path, output: Path, parts: list[Path], id_field: str, base_ids: set[str], merged: Merged
) -> None:
    base = parquet().ParquetFile(output) if output.exists() else None
    schema, json_cols = _output_schema(parts, base_ids, id_field, base)
    with parquet().ParquetWriter(tmp, schema) as w:
        if base is not None:
            for b in base.iter_batches():
                w.write_table(_conform(_columns_of(b), b.num_rows, schema, set()))
        for t in _ok_rows(parts, base_ids):
            w.write_table(_conform(_output_columns(t, id_field), t.num_rows, schema, json_cols))
            merged.added += t.num_rows
    merged.rows += merged.added


def _write_empty(tmp: Path, output: Path, id_field: str) -> None:
    if file_format(output) == "jsonl":
        tmp.write_bytes(b"")
        return
    pa = pyarrow()
    schema = pa.schema([(id_field, pa.string()), *result_fields()])
    parquet().write_table(schema.empty_table(), tmp)


def result_fields() -> list[tuple[str, Any]]:
    """Names and Arrow types of the result columns."""
    pa = pyarrow()
    return [
        ("compressed_text", pa.string()),
        ("original_tokens", pa.int64()),
        ("compressed_tokens", pa.int64()),
        ("target_tokens", pa.int64()),
        ("kept_spans", pa.list_(pa.list_(pa.int64()))),
        ("notes", pa.list_(pa.string())),
        ("config_hash", pa.string()),
        ("budget", pa.string()),
    ]


def _columns_of(t: Any) -> dict[str, Any]:
    return {n: t.column(n) for n in t.schema.names}


def _output_columns(t: Any, id_field: str) -> dict[str, Any]:
    """id, results, metadata: Arrow columns, or (JSONL metadata) lists of Python values."""
    if META in t.column_names:
        metas = _metas(t)
        keys = list(dict.fromkeys(k for m in metas for k in m))
        meta: dict[str, Any] = {k: [m.get(k) for m in metas] for k in keys}
    else:
        names = [n for n in t.column_names if n not in _INTERNAL and n not in RESULT_COLUMNS]
        meta = {n: t.column(n) for n in names}
    cols: dict[str, Any] = {id_field: meta.pop(id_field)}
    cols.update({c: t.column(c) for c in RESULT_COLUMNS})
    cols.update(meta)
    return cols


def _output_schema(
    parts: list[Path], base_ids: set[str], id_field: str, base: Any
) -> tuple[Any, set[str]]:
    """The output file's schema, and the fields written as JSON text (mixed types)."""
    pa = pyarrow()
    found: dict[str, list[Any]] = {}
    if base is not None:
        for f in base.schema_arrow:
            found.setdefault(f.name, []).append(f.type)
    for t in _ok_rows(parts, base_ids):
        for name, col in _output_columns(t, id_field).items():
            found.setdefault(name, []).append(_infer(col))
    fields, json_cols = [], set()
    for name, types in found.items():
        typ = _unify(name, types)
        if typ is None:
            if name in RESULT_COLUMNS or name == id_field:
                raise InputError(
                    f"cannot add rows to {name!r}: its values changed type ({types}); "
                    "write to a new output file"
                )
            typ = pa.string()
            json_cols.add(name)
        fields.append(pa.field(name, typ))
    return pa.schema(fields), json_cols


def _infer(col: Any) -> Any:
    """The Arrow type of a column, or None when its Python values share no type."""
    pa = pyarrow()
    if not isinstance(col, list):
        return col.type
    try:
        return pa.array(col).type
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None


def _unify(name: str, types: list[Any]) -> Any:
    """One type for all of ``types`` (ints and floats -> float, null -> any), or None."""
    pa = pyarrow()
    if any(t is None for t in types):
        return None
    try:
        schema = pa.unify_schemas(
            [pa.schema([(name, t)]) for t in types], promote_options="permissive"
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None
    return schema.field(name).type


def _conform(cols: dict[str, Any], n: int, schema: Any, json_cols: set[str]) -> Any:
    """A table of ``schema`` from ``cols`` (missing columns null, JSON columns as text)."""
    pa = pyarrow()
    out = []
    for f in schema:
        c = cols.get(f.name)
        if c is None:
            out.append(pa.nulls(n, f.type))
            continue
        if f.name in json_cols:
            values = c if isinstance(c, list) else c.to_pylist()
            c = [
                None if v is None else json.dumps(v, ensure_ascii=False, default=_json_default)
                for v in values
            ]
        out.append(pa.array(c, f.type) if isinstance(c, list) else c.cast(f.type))
    return pa.table(out, schema=schema)


def _reject_rows(work: WorkDir, parts: list[Path], id_field: str) -> list[dict[str, Any]]:
    """This run's rejects: those found reading the input, and those found compressing."""
    pc = compute()
    rows: list[dict[str, Any]] = []
    if work.scan_rejects.is_file():
        with open(work.scan_rejects, encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    for p in parts:
        t = parquet().read_table(p)
        t = t.filter(pc.equal(t.column(STATUS), "rejected"))
        for meta, row, kind, reason in zip(
            _metas(t),
            t.column(ROW).to_pylist(),
            t.column(KIND).to_pylist(),
            t.column(REASON).to_pylist(),
        ):
            rows.append({"row": row, "id": meta.get(id_field), "kind": kind, "reason": reason})
    rows.sort(key=lambda r: r["row"])
    return rows


__all__ = ["Merged", "finish", "result_fields"]
