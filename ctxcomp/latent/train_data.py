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

from ..errors import InputError
from ..training.data import DataError, ReadReport

POLICIES = ("skip", "fail")


@dataclass(frozen=True)
class QAExample:
    context: str
    question: str
    answer: str
    id: str = ""
    kind: str = ""


def _lines(path: Path) -> Iterator[tuple[str, str | None, str]]:
    """(where, text or None when undecodable, reason)."""
    raw = path.read_bytes()
    if path.suffix == ".json":
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield str(path), None, f"unreadable JSON file: {exc}"
            return
        for i, rec in enumerate(obj if isinstance(obj, list) else [obj]):
            yield f"{path}[{i}]", json.dumps(rec), ""
        return
    for ln, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{ln}", line.decode("utf-8"), ""
        except UnicodeDecodeError as exc:
            yield f"{path}:{ln}", None, f"not UTF-8 at column {exc.start + 1}"


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
    if on_error not in POLICIES:
        raise InputError(f"on_error must be one of {POLICIES}, got {on_error!r}")
    report = ReadReport()
    out: list[QAExample] = []

    def fail(where: str, kind: str, reason: str) -> None:
        if on_error == "fail":
            raise DataError(f"{where}: {kind}: {reason}")
        report.skipped[kind] += 1
        report.issues.append((where, f"{kind}: {reason}"))
        if warn is not None and len(report.issues) <= max_warnings:
            warn(f"skipped {where}: {kind}: {reason}")

    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise InputError(f"training data file {str(p)!r} does not exist")
        for where, line, why in _lines(path):
            report.read += 1
            if line is None:
                fail(where, "unreadable", why)
                continue
            try:
                rec: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                fail(where, "bad JSON", str(exc))
                continue
            problem = _check(rec, count_tokens, max_context_tokens, max_answer_tokens)
            if problem is not None:
                fail(where, *problem)
                continue
            out.append(
                QAExample(
                    rec["context"],
                    rec["question"],
                    rec["answer"],
                    str(rec.get("id", where)),
                    str(rec.get("kind", "")),
                )
            )
            report.kept += 1
    return out, report


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
