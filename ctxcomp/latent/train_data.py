"""Question-answer records for latent-compression training, read with bad-record reporting.

One JSON object per line (``.jsonl``) or a JSON list: ``{"context": str, "question": str,
"answer": str, "id"?: str, "kind"?: str}``. The answer is what the LM should say with the
full context (a gold short answer, or the LM's own greedy answer); the trainer distils the
full-context LM (teacher) into the reader of concept embeddings on its tokens.

Bad records are skipped and reported (``on_error="skip"``) or stop the run
(``on_error="fail"``), as ``ctxcomp train`` does (:class:`ctxcomp.training.data.ReadReport`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training.data import BadRecord, ReadReport, read_files


@dataclass(frozen=True)
class QAExample:
    context: str
    question: str
    answer: str
    id: str = ""
    kind: str = ""


def _records(
    path: Path, report: ReadReport, fail: Callable[[str, str, str], None]
) -> Iterator[tuple[str, Any]]:
    """(where, decoded JSON) per record of a JSONL or JSON file; an undecodable file or line
    is reported as ``unreadable``, a line that is not JSON as ``bad JSON`` (both counted as
    read)."""
    raw = path.read_bytes()
    if path.suffix == ".json":
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            report.read += 1
            fail(str(path), "unreadable", f"unreadable JSON file: {exc}")
            return
        for i, rec in enumerate(obj if isinstance(obj, list) else [obj]):
            yield f"{path}[{i}]", rec
        return
    for ln, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{ln}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.read += 1
            fail(where, "unreadable", f"not UTF-8 at column {exc.start + 1}")
            continue
        try:
            yield where, json.loads(text)
        except json.JSONDecodeError as exc:
            report.read += 1
            fail(where, "bad JSON", str(exc))


def read_qa(
    paths: Sequence[str | Path],
    *,
    on_error: str = "skip",
    count_tokens: Callable[[str], int] | None = None,
    max_context_tokens: int | None = None,
    max_answer_tokens: int = 64,
    warn: Callable[[str], None] | None = None,
    max_warnings: int = 20,
) -> tuple[list[QAExample], ReadReport]:
    """Read QA records; contexts longer than ``max_context_tokens`` and answers longer than
    ``max_answer_tokens`` (by ``count_tokens``) are bad records, never cut silently."""

    def parse(where: str, rec: Any, report: ReadReport) -> QAExample:
        problem = _check(rec, count_tokens, max_context_tokens, max_answer_tokens)
        if problem is not None:
            raise BadRecord(*problem)
        return QAExample(
            rec["context"],
            rec["question"],
            rec["answer"],
            str(rec.get("id", where)),
            str(rec.get("kind", "")),
        )

    return read_files(
        paths, parse, on_error=on_error, warn=warn, max_warnings=max_warnings, records=_records
    )


def _check(
    rec: Any,
    count: Callable[[str], int] | None,
    max_ctx: int | None,
    max_ans: int,
) -> tuple[str, str] | None:
    if not isinstance(rec, dict):
        return "bad field", f"record must be a JSON object, got {type(rec).__name__}"
    for k in ("context", "question", "answer"):
        v = rec.get(k)
        if not isinstance(v, str):
            return "bad field", f"{k!r} must be a string, got {type(v).__name__}"
        if not v.strip():
            return "empty field", f"{k!r} is empty"
    if count is not None:
        if max_ctx is not None and (n := count(rec["context"])) > max_ctx:
            return "too long", f"context has {n} tokens, more than --max-context-tokens {max_ctx}"
        if (n := count(rec["answer"])) > max_ans:
            return "too long", f"answer has {n} tokens, more than {max_ans}"
    return None
