"""The row schema of ``ctxcomp batch``: fields, column names, limits and row checks.

Internal columns (every block that travels through Ray carries them):
``ctxcomp.row`` (0-based position in the input: for JSONL, the line number minus one),
``ctxcomp.key`` (the id as a string: the identity used for resume and dedup),
``ctxcomp.text``, ``ctxcomp.question`` (null when the row has none), and the metadata: for
Parquet, the input's own columns except the text column (types kept); for JSONL,
``ctxcomp.meta``: the row's JSON object without the text field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._deps import require
from ..errors import InputError
from ..validate import CONTROL

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
# columns ctxcomp adds to every output row (an input column of the same name is an error)
RESULT_COLUMNS = (
    "compressed_text",
    "original_tokens",
    "compressed_tokens",
    "target_tokens",
    "kept_spans",
    "notes",
    "config_hash",
    "budget",
)
ROW, KEY, TEXT, QUESTION, META = (
    "ctxcomp.row",
    "ctxcomp.key",
    "ctxcomp.text",
    "ctxcomp.question",
    "ctxcomp.meta",
)
DEFAULT_MAX_CHARS = 2_000_000


def pyarrow() -> Any:
    """pyarrow, or MissingDependencyError with the batch extra's install hint."""
    return require("pyarrow", "batch")


def parquet() -> Any:
    return require("pyarrow.parquet", "batch")


def compute() -> Any:
    return require("pyarrow.compute", "batch")


def file_format(path: str | Path) -> str:
    """'jsonl' or 'parquet' from the file name's extension."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"{str(path)!r}: unknown format; name the file *.jsonl / *.ndjson (JSON lines) "
            "or *.parquet / *.pq"
        )
    return fmt


@dataclass(frozen=True)
class Fields:
    """Which input fields hold the row id, the text to compress and (optionally) a question."""

    id: str = "id"
    text: str = "text"
    question: str | None = None

    def __post_init__(self) -> None:
        names = [self.id, self.text] + ([self.question] if self.question else [])
        if len(set(names)) != len(names):
            raise InputError(f"id, text and question fields must differ, got {names}")
        clash = [n for n in (self.id, self.question) if n in RESULT_COLUMNS]
        if clash:
            raise InputError(f"field {clash[0]!r} clashes with an output column of ctxcomp batch")


@dataclass(frozen=True)
class Limits:
    max_chars: int = DEFAULT_MAX_CHARS  # a longer text is rejected as too large

    def __post_init__(self) -> None:
        if self.max_chars <= 0:
            raise InputError(f"max_chars must be positive, got {self.max_chars}")


@dataclass(frozen=True)
class Reject:
    """A row that was not compressed: where it is, its id (when readable) and why."""

    row: int
    id: Any
    kind: str  # invalid_json, not_object, missing_id, bad_id, duplicate_id, missing_text, ...
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "id": self.id, "kind": self.kind, "reason": self.reason}


class IdCheck:
    """Id checks shared by both formats: type, emptiness, duplicates, already done."""

    def __init__(self, fields: Fields, done: set[str]) -> None:
        self.fields, self.done = fields, done
        self.first: dict[str, int] = {}

    def check(self, row: int, value: Any) -> tuple[str | None, Reject | None]:
        """(key, None) for a fresh id, (None, None) for a done one, (None, reject) else."""
        name = self.fields.id
        if value is None:
            return None, Reject(row, None, "missing_id", f"missing id field {name!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None, Reject(
                row,
                None,
                "bad_id",
                f"id must be a string or an integer, got {type(value).__name__}",
            )
        key = str(value)
        if not key.strip():
            return None, Reject(row, value, "bad_id", "id is empty")
        if key in self.first:
            return None, Reject(
                row, value, "duplicate_id", f"duplicate id {key!r} (first at row {self.first[key]})"
            )
        self.first[key] = row
        if key in self.done:
            return None, None
        return key, None


def check_string(value: Any, name: str, *, limit: int | None = None) -> tuple[str | None, str, str]:
    """(text, "", "") when ``value`` is usable text; else (None, kind, reason)."""
    if value is None:
        return None, "missing_text", f"missing field {name!r}"
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, "invalid_utf8", f"{name!r} is not valid UTF-8 at byte {exc.start}"
    if not isinstance(value, str):
        return None, "not_string", f"{name!r} is {type(value).__name__}, not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return None, "invalid_utf8", f"{name!r} has a lone surrogate at offset {exc.start}"
    m = CONTROL.search(value)  # the library's one text policy (ctxcomp.validate)
    if m:
        return (
            None,
            "control_char",
            f"{name!r} has control character {m.group()!r} at offset {m.start()}",
        )
    if limit is not None:
        if len(value) > limit:
            return (
                None,
                "too_large",
                f"{name!r} has {len(value):,} characters, over the limit of {limit:,}",
            )
        if not value.strip():
            return None, "empty_text", f"{name!r} is empty or whitespace only"
    return value, "", ""


__all__ = [
    "DEFAULT_MAX_CHARS",
    "FORMATS",
    "KEY",
    "META",
    "QUESTION",
    "RESULT_COLUMNS",
    "ROW",
    "TEXT",
    "Fields",
    "IdCheck",
    "Limits",
    "Reject",
    "check_string",
    "compute",
    "file_format",
    "parquet",
    "pyarrow",
]
