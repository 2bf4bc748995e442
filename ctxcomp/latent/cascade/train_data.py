"""Training records for C3: texts to reconstruct and (optionally) questions to answer.

Files are JSONL (one record a line) or JSON (a list, or ``{"data": [...]}``), records:

* reconstruction: ``{"text": "..."}`` — the decoder learns to write ``text`` back from its
  latents alone ("Repeat the text: ");
* QA: ``{"context": "...", "question": "...", "answer": "..."}`` — the decoder learns to
  answer ``question`` from the latents of ``context``.

Bad records (broken JSON, bytes that are not UTF-8, a record that is not an object, missing
or empty fields, fields of the wrong type) are reported with ``file:line`` and the reason;
``on_error="skip"`` skips and counts them, ``"fail"`` raises :class:`DataError` at the
first. Texts too short for the smallest chunk are counted as ``too short`` when they are
cut into samples (:func:`make_samples`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...training.data import BadRecord, DataError, ReadReport, read_files

__all__ = ["DataError", "ReadReport", "Record", "Sample", "make_samples", "read_records"]


@dataclass(frozen=True)
class Record:
    """A text to reconstruct (``question is None``) or a (context, question, answer)."""

    text: str
    question: str | None = None
    answer: str | None = None
    where: str = ""


@dataclass(frozen=True)
class Sample:
    """One training sample: encoder token ids of a chunk and what the decoder must write."""

    context_ids: tuple[int, ...]
    instruction: str
    target: str
    where: str = ""


def _text_field(rec: dict[str, Any], key: str) -> str:
    v = rec.get(key)
    if v is None:
        raise BadRecord("missing field", f"record has no {key!r}")
    if not isinstance(v, str):
        raise BadRecord("bad field", f"{key!r} must be a string, got {type(v).__name__}")
    if not v.strip():
        raise BadRecord("empty field", f"{key!r} is empty")
    return v


def parse_record(rec: Any) -> Record:
    if not isinstance(rec, dict):
        raise BadRecord("bad field", f"record must be a JSON object, got {type(rec).__name__}")
    if "question" in rec or "answer" in rec or "context" in rec:
        return Record(
            _text_field(rec, "context"), _text_field(rec, "question"), _text_field(rec, "answer")
        )
    return Record(_text_field(rec, "text"))


def read_records(
    paths: Sequence[str | Path],
    *,
    on_error: str = "skip",
    warn: Callable[[str], None] | None = None,
    max_warnings: int = 20,
) -> tuple[list[Record], ReadReport]:
    """Read reconstruction and QA records; see the module doc."""

    def parse(where: str, raw: Any, report: ReadReport) -> Record:
        rec = parse_record(raw)
        return Record(rec.text, rec.question, rec.answer, where)

    return read_files(paths, parse, on_error=on_error, warn=warn, max_warnings=max_warnings)


def make_samples(
    records: Sequence[Record],
    tokenizer: Any,
    *,
    chunk_lengths: Sequence[int],
    reconstruct: str,
    seed: int = 0,
    report: ReadReport | None = None,
) -> list[Sample]:
    """Cut records into samples of the given chunk lengths (encoder tokens).

    A reconstruction text is cut into consecutive chunks, each of a length drawn from
    ``chunk_lengths`` (a last piece shorter than the smallest length is dropped and counted
    in ``report.skipped["too short"]`` when it is the whole text); its target is the
    chunk's text. A QA record is one sample whose context must fit the longest length."""
    if not chunk_lengths or min(chunk_lengths) < 1:
        raise InputError(f"chunk_lengths must be positive token counts, got {chunk_lengths!r}")
    rng = random.Random(seed)
    lo, hi = min(chunk_lengths), max(chunk_lengths)
    out: list[Sample] = []
    for rec in records:
        ids = [int(i) for i in tokenizer(rec.text, add_special_tokens=False)["input_ids"]]
        if rec.question is not None:
            assert rec.answer is not None
            if not 1 <= len(ids) <= hi:
                _skip(report, rec.where, "context too long", f"{len(ids)} tokens > {hi}")
                continue
            out.append(Sample(tuple(ids), rec.question, rec.answer, rec.where))
            continue
        if len(ids) < lo:
            _skip(report, rec.where, "too short", f"{len(ids)} tokens < {lo}")
            continue
        pos = 0
        while len(ids) - pos >= lo:
            n = rng.choice([c for c in chunk_lengths if c <= len(ids) - pos])
            piece = ids[pos : pos + n]
            out.append(Sample(tuple(piece), reconstruct, tokenizer.decode(piece), rec.where))
            pos += n
    return out


def _skip(report: ReadReport | None, where: str, kind: str, reason: str) -> None:
    if report is not None:
        report.skipped[kind] += 1
        report.issues.append((where, f"{kind}: {reason}"))
        report.kept -= 1
