"""Training data readers: word-level keep/drop labels from two formats.

(a) pairs of original and compressed text, the format of LLMLingua-2's public data set
    (MeetingBank-LLMCompressed): records with ``prompt`` and ``compressed_prompt`` and, when
    the text was compressed chunk by chunk, ``prompt_list`` / ``compressed_prompt_list``.
    The compressed words are aligned back to the original in order (greedy match within a
    look-ahead window, as the LLMLingua-2 paper labels its data); matched words are "keep".
(b) word labels: ``{"words": [...], "labels": [...]}`` or ``{"text": ..., "labels": [...]}``
    (``text`` split on whitespace), labels 0/1 (or booleans) one per word.

Files are JSONL (one record a line) or JSON (a list of records, or {"data": [...]}).
Bad records (misaligned pairs, empty chunks, labels of the wrong length, bytes that are not
UTF-8, broken JSON) are reported with ``file:line`` and the reason; with ``on_error="skip"``
they are skipped and counted, with ``"fail"`` the first one raises :class:`DataError`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError

_STRIP = re.compile(r"^[^\w]+|[^\w]+$", re.UNICODE)
FORMATS = ("auto", "pairs", "labels")
POLICIES = ("skip", "fail")


class DataError(InputError):
    """A bad training record under ``on_error="fail"``."""


@dataclass
class WordExample:
    words: list[str]
    labels: list[int]
    where: str = ""


@dataclass
class ReadReport:
    """What reading kept and skipped; ``issues`` holds (where, reason) of skipped records."""

    read: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    issues: list[tuple[str, str]] = field(default_factory=list)
    aligned_words: int = 0
    compressed_words: int = 0

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        s = f"read {self.read} records, kept {self.kept}, skipped {self.n_skipped}"
        if self.skipped:
            s += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) + ")"
        if self.compressed_words:
            s += f"; aligned {self.aligned_words}/{self.compressed_words} compressed words"
        return s


class BadRecord(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _norm(w: str) -> str:
    n = _STRIP.sub("", w).lower()
    return n or w.lower()


def align_compressed(
    original_words: Sequence[str], compressed_words: Sequence[str], window: int = 150
) -> tuple[list[int], int]:
    """Labels for ``original_words``: 1 where a compressed word is matched, in order.

    Each compressed word is searched among the next ``window`` original words after the last
    match; the first equal word (case and surrounding punctuation ignored) is taken. Returns
    (labels, number of compressed words matched).
    """
    orig = [_norm(w) for w in original_words]
    labels = [0] * len(orig)
    pos = 0
    matched = 0
    for cw in compressed_words:
        c = _norm(cw)
        stop = min(len(orig), pos + window)
        for j in range(pos, stop):
            if orig[j] == c:
                labels[j] = 1
                pos = j + 1
                matched += 1
                break
    return labels, matched


def pair_example(
    rec: dict[str, Any], *, window: int = 150, min_aligned: float = 0.8
) -> tuple[WordExample, int, int]:
    """One pair record -> word labels over the original (chunks concatenated in order)."""
    if "prompt_list" in rec or "compressed_prompt_list" in rec:
        ol, cl = rec.get("prompt_list"), rec.get("compressed_prompt_list")
        if not isinstance(ol, list) or not isinstance(cl, list):
            raise BadRecord(
                "bad field", "prompt_list and compressed_prompt_list must both be lists"
            )
        if len(ol) != len(cl):
            raise BadRecord(
                "chunk count mismatch", f"{len(ol)} original chunks but {len(cl)} compressed chunks"
            )
        chunks = list(zip(ol, cl))
    else:
        o, c = rec.get("prompt"), rec.get("compressed_prompt")
        chunks = [(o, c)]
    words: list[str] = []
    labels: list[int] = []
    n_c = n_m = 0
    for i, (o, c) in enumerate(chunks):
        if not isinstance(o, str) or not isinstance(c, str):
            raise BadRecord("bad field", f"chunk {i}: prompt and compressed_prompt must be strings")
        ow, cw = o.split(), c.split()
        if not ow or not cw:
            raise BadRecord(
                "empty chunk", f"chunk {i}: {'original' if not ow else 'compressed'} text is empty"
            )
        lab, m = align_compressed(ow, cw, window)
        if m < min_aligned * len(cw):
            raise BadRecord(
                "misaligned pair",
                f"chunk {i}: only {m} of {len(cw)} compressed words found in order in the original "
                f"({m / len(cw):.0%} < {min_aligned:.0%}); first words {' '.join(cw[:6])!r}",
            )
        words += ow
        labels += lab
        n_c += len(cw)
        n_m += m
    return WordExample(words, labels), n_c, n_m


def label_example(rec: dict[str, Any]) -> WordExample:
    if "words" in rec:
        words = rec["words"]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise BadRecord("bad field", "words must be a list of strings")
    elif isinstance(rec.get("text"), str):
        words = rec["text"].split()
    else:
        raise BadRecord("bad field", "record needs 'words' (list) or 'text' (string)")
    labels = rec.get("labels")
    if not isinstance(labels, list):
        raise BadRecord("bad field", "labels must be a list")
    if not words:
        raise BadRecord("empty chunk", "no words")
    if len(labels) != len(words):
        raise BadRecord("wrong label length", f"{len(labels)} labels for {len(words)} words")
    out = []
    for x in labels:
        if isinstance(x, bool) or x in (0, 1):
            out.append(int(x))
        else:
            raise BadRecord("bad label", f"labels must be 0/1, got {x!r}")
    return WordExample(list(words), out)


def iter_records(
    path: Path, report: ReadReport, fail: Callable[[str, str, str], None]
) -> Iterator[tuple[str, Any]]:
    """(``file:line`` or ``file[i]``, decoded JSON) of each record of a JSONL or JSON file;
    undecodable lines go to ``fail(where, kind, reason)`` and are counted as read."""
    raw = path.read_bytes()
    name = str(path)
    if path.suffix == ".json":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.read += 1
            fail(name, "not UTF-8", f"bytes are not valid UTF-8 at byte {exc.start}")
            return
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            report.read += 1
            fail(f"{name}:{exc.lineno}", "bad JSON", str(exc))
            return
        if isinstance(obj, dict) and isinstance(obj.get("data"), list):
            obj = obj["data"]
        if not isinstance(obj, list):
            obj = [obj]
        for i, rec in enumerate(obj):
            yield f"{name}[{i}]", rec
        return
    for ln, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        where = f"{name}:{ln}"
        try:
            s = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.read += 1
            fail(where, "not UTF-8", f"bytes are not valid UTF-8 at column {exc.start + 1}")
            continue
        try:
            yield where, json.loads(s)
        except json.JSONDecodeError as exc:
            report.read += 1
            fail(where, "bad JSON", str(exc))


T = TypeVar("T")
Records = Callable[[Path, ReadReport, Callable[[str, str, str], None]], Iterator[tuple[str, Any]]]


def read_files(
    paths: Sequence[str | Path],
    parse: Callable[[str, Any, ReadReport], T],
    *,
    on_error: str = "skip",
    warn: Callable[[str], None] | None = None,
    max_warnings: int = 20,
    records: Records | None = None,
) -> tuple[list[T], ReadReport]:
    """The one training-data reading loop: each file's records (``records``, default
    :func:`iter_records`) go through ``parse(where, record, report)``; a record it rejects
    with :class:`BadRecord` (or that cannot be decoded) is skipped and reported, or with
    ``on_error="fail"`` raises :class:`DataError` naming the place. Nothing is dropped
    silently: ``report`` counts what was read, kept and skipped, by kind."""
    if on_error not in POLICIES:
        raise InputError(f"on_error must be one of {POLICIES}, got {on_error!r}")
    report = ReadReport()
    out: list[T] = []

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
        for where, rec in (records or iter_records)(path, report, fail):
            report.read += 1
            try:
                item = parse(where, rec, report)
            except BadRecord as br:
                fail(where, br.kind, br.reason)
                continue
            out.append(item)
            report.kept += 1
    return out, report


def read_examples(
    paths: Sequence[str | Path],
    *,
    fmt: str = "auto",
    on_error: str = "skip",
    align_window: int = 150,
    min_aligned: float = 0.8,
    warn: Callable[[str], None] | None = None,
    max_warnings: int = 20,
) -> tuple[list[WordExample], ReadReport]:
    """Read word-labelled examples from files; see the module doc for the formats."""
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {fmt!r}")

    def parse(where: str, rec: Any, report: ReadReport) -> WordExample:
        if not isinstance(rec, dict):
            raise BadRecord("bad field", f"record must be a JSON object, got {type(rec).__name__}")
        kind = fmt
        if kind == "auto":
            kind = (
                "pairs"
                if ("compressed_prompt" in rec or "compressed_prompt_list" in rec)
                else "labels"
            )
        if kind == "pairs":
            ex, n_c, n_m = pair_example(rec, window=align_window, min_aligned=min_aligned)
            report.compressed_words += n_c
            report.aligned_words += n_m
        else:
            ex = label_example(rec)
        ex.where = where
        return ex

    return read_files(paths, parse, on_error=on_error, warn=warn, max_warnings=max_warnings)
