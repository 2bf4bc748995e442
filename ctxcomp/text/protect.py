"""Protected spans: what is kept verbatim whatever the budget (keep markers, code, URLs,
JSON, markdown structure), found as sorted character spans, and the units they overlap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Protection:
    """What is kept verbatim regardless of the budget.

    ``keep_marker`` is a pair of strings; text between them is kept and the markers
    themselves are removed from the output.
    """

    code: bool = True
    urls: bool = True
    json: bool = True
    markdown: bool = True
    keep_marker: tuple[str, str] | None = ("<ctxcomp:keep>", "</ctxcomp:keep>")

    def fingerprint(self) -> dict[str, object]:
        return {
            "code": self.code,
            "urls": self.urls,
            "json": self.json,
            "markdown": self.markdown,
            "keep_marker": list(self.keep_marker) if self.keep_marker else None,
        }


_FENCE_LINE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\n]*?)[ \t]*$", re.M)
# Inline code: a short backtick span on one line that opens after a non-word character and
# closes before one ("don`t ... it`s" is no code span), holds no sentence end followed by
# whitespace and no PTB/LaTeX closing quote ('' as in "`` hello ''"): prose that happens to
# hold backticks is never protected wholesale.
INLINE_CODE_MAX_CHARS = 100
_INLINE_CODE = re.compile(
    rf"(?<![`\w])(`{{1,2}})(?!`)([^`\n]{{1,{INLINE_CODE_MAX_CHARS}}}?)(?<!`)\1(?![`\w])"
)
_NOT_CODE = re.compile(r"[.!?][\"')\]]*\s|''")
_URL = re.compile(
    r"\b(?:https?|ftp)://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]|\bwww\.[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+[^\n]*$", re.M)
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?=[ \t])", re.M)
_TABLE_RULE = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$", re.M
)


def find_protected(
    text: str, protection: Protection
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Spans to keep verbatim, and marker spans to remove, as sorted (start, end) lists."""
    keep: list[tuple[int, int]] = []
    remove: list[tuple[int, int]] = []
    if protection.keep_marker:
        open_m, close_m = protection.keep_marker
        pos = 0
        while True:
            a = text.find(open_m, pos)
            if a < 0:
                break
            b = text.find(close_m, a + len(open_m))
            if b < 0:  # an unclosed marker protects to the end: never compress what was asked kept
                keep.append((a + len(open_m), len(text)))
                remove.append((a, a + len(open_m)))
                break
            keep.append((a + len(open_m), b))
            remove.append((a, a + len(open_m)))
            remove.append((b, b + len(close_m)))
            pos = b + len(close_m)
    if protection.code and ("```" in text or "~~~" in text):
        keep.extend(fenced_blocks(text))
    if protection.code and "`" in text:
        keep.extend(inline_code(text))
    if protection.urls and ("://" in text or "www." in text):
        keep.extend(m.span() for m in _URL.finditer(text))
    if protection.markdown:
        keep.extend(m.span() for m in _HEADING.finditer(text))
        keep.extend(m.span() for m in _LIST_MARKER.finditer(text))
        if "---" in text:
            keep.extend(m.span() for m in _TABLE_RULE.finditer(text))
    if protection.json and "{" in text:
        keep.extend(_json_objects(text))
    return _merge(keep), sorted(remove)


def fenced_blocks(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks that open and close, fence lines included.

    Fence lines pair up in order: an opening fence (three or more backticks or tildes, an
    optional info string) is closed by the next bare fence of the same character at least as
    long. A fence that never closes protects nothing (a chunk cut out of a longer document
    often starts inside a block, with its closing fence). Nor does a pairing that would
    enclose a fence line of that size with an info string (```` ```python ````): such a line
    can only open a block, so the earlier fence was a stray closing one and the block starts
    there.
    """
    lines = [
        (m.start(), m.end(), m.group(1)[0], len(m.group(1)), bool(m.group(2)))
        for m in _FENCE_LINE.finditer(text)
    ]
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        start, _, char, size, _ = lines[i]
        nxt = i + 1  # where to look for the next opening fence
        for j in range(i + 1, len(lines)):
            _, end, c, n, info = lines[j]
            if c != char or n < size:  # content of the block
                continue
            if not info:
                out.append((start, end))
                nxt = j + 1
            else:  # an opening fence inside: the one at i opened nothing
                nxt = j
            break
        i = nxt
    return out


def inline_code(text: str) -> list[tuple[int, int]]:
    """Inline code spans (see ``_INLINE_CODE``), backticks included."""
    return [m.span() for m in _INLINE_CODE.finditer(text) if not _NOT_CODE.search(m.group(2))]


def _json_objects(text: str) -> list[tuple[int, int]]:
    """Spans of JSON objects/arrays that parse (outermost only)."""
    dec = json.JSONDecoder()
    spans: list[tuple[int, int]] = []
    pos = text.find("{")
    while pos >= 0:
        try:
            _, end = dec.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if end - pos > 2:
            spans.append((pos, end))
        pos = text.find("{", end)
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans = sorted(s for s in spans if s[1] > s[0])
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def overlap_mask(starts: np.ndarray, ends: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """True for units [starts, ends) that overlap any of the sorted, disjoint ``spans``."""
    return span_index(starts, ends, spans) >= 0


def span_index(starts: np.ndarray, ends: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Index in the sorted, disjoint ``spans`` of the span each unit overlaps (-1: none)."""
    if not spans:
        return np.full(starts.size, -1, dtype=np.int64)
    arr = np.asarray(spans, dtype=np.int64)
    j = np.searchsorted(arr[:, 0], ends, side="left") - 1
    hit = (j >= 0) & (arr[np.clip(j, 0, None), 1] > starts)
    return np.where(hit, j, -1)
