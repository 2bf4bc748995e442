"""Helpers shared by the batch tests (a plain module: tests/batch is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RATIO = 0.5


def write_jsonl(path: Path, rows: list[dict[str, Any]], extra: bytes = b"") -> Path:
    with open(path, "wb") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False).encode() + b"\n")
        f.write(extra)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def assert_rows_match(rows: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    """Every expected id exactly once, each row as ``ctxcomp.compress`` gave it."""
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids in the output"
    assert sorted(ids) == sorted(expected), "rows lost or extra"
    for row in rows:
        exp = expected[row["id"]]
        assert row["compressed_text"] == exp.text, row["id"]
        assert row["kept_spans"] == [[s.start, s.end] for s in exp.spans], row["id"]
        assert row["original_tokens"] == exp.original_tokens
        assert row["compressed_tokens"] == exp.compressed_tokens <= row["target_tokens"]
        assert row["target_tokens"] == exp.target_tokens
        assert row["notes"] == list(exp.notes)
        assert row["config_hash"] == exp.config_hash
        assert row["budget"] == f"ratio={RATIO:g}"
