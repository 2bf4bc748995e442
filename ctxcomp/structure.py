"""Text structure the selection must respect: scripts, separators, protected spans.

Everything here works on whole-text numpy arrays (code points, cumulative counts) so the
per-document cost is a handful of vectorised passes, not a Python loop over words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

# Scripts written without spaces between words: every unit in them stands alone and joins
# its neighbours without a space. (CJK ideographs and punctuation, kana, Thai, Lao,
# Khmer, Myanmar, Tibetan, fullwidth forms.)
_NO_SPACE_RANGES = np.array(
    [
        (0x0E00, 0x0EFF),  # Thai, Lao
        (0x0F00, 0x0FFF),  # Tibetan
        (0x1000, 0x109F),  # Myanmar
        (0x1780, 0x17FF),  # Khmer
        (0x2E80, 0x2FDF),  # CJK radicals
        (0x3000, 0x30FF),  # CJK punctuation, Hiragana, Katakana
        (0x3100, 0x31FF),  # Bopomofo, Katakana ext
        (0x3400, 0x4DBF),  # CJK ext A
        (0x4E00, 0x9FFF),  # CJK unified
        (0xF900, 0xFAFF),  # CJK compatibility
        (0xFE30, 0xFE4F),  # CJK compatibility forms
        (0xFF00, 0xFFEF),  # fullwidth forms
        (0x20000, 0x3FFFF),  # CJK ext B+
    ],
    dtype=np.int64,
)

GAP_NONE, GAP_SPACE, GAP_NEWLINE, GAP_PARAGRAPH = 0, 1, 2, 3
SEPARATORS = ("", " ", "\n", "\n\n")


def codepoints(text: str) -> np.ndarray:
    """The text's code points as an int64 array (one entry per Python character)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
        np.int64
    )


def no_space_mask(cps: np.ndarray) -> np.ndarray:
    """True where a character belongs to a script written without spaces."""
    lo = _NO_SPACE_RANGES[:, 0]
    idx = np.searchsorted(lo, cps, side="right") - 1
    ok = idx >= 0
    hi = _NO_SPACE_RANGES[np.clip(idx, 0, None), 1]
    return ok & (cps <= hi)


def katakana_mask(cps: np.ndarray) -> np.ndarray:
    return (
        ((cps >= 0x30A0) & (cps <= 0x30FF))
        | ((cps >= 0x31F0) & (cps <= 0x31FF))
        | ((cps >= 0xFF66) & (cps <= 0xFF9F))
    )


def digit_mask(cps: np.ndarray) -> np.ndarray:
    return ((cps >= 0x30) & (cps <= 0x39)) | ((cps >= 0xFF10) & (cps <= 0xFF19))


def newline_mask(cps: np.ndarray) -> np.ndarray:
    m = (cps == 0x0A) | (cps == 0x0D) | (cps == 0x2028) | (cps == 0x2029)
    m[:-1] &= ~((cps[:-1] == 0x0D) & (cps[1:] == 0x0A))  # CRLF is one line break, CR alone one
    return m


def whitespace_mask(cps: np.ndarray) -> np.ndarray:
    return (
        (cps == 0x20)
        | ((cps >= 0x09) & (cps <= 0x0D))
        | (cps == 0xA0)
        | (cps == 0x3000)
        | ((cps >= 0x2000) & (cps <= 0x200A))
        | (cps == 0x2028)
        | (cps == 0x2029)
        | (cps == 0x1680)
        | (cps == 0x202F)
        | (cps == 0x205F)
    )


def gap_classes(cps: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Class of the text before each unit: none, space, newline or blank line (paragraph).

    Unit ``i``'s gap is ``text[ends[i-1]:starts[i]]`` (from 0 for the first unit).
    """
    n = starts.size
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    ws_cum = np.concatenate(([0], np.cumsum(whitespace_mask(cps))))
    nl_cum = np.concatenate(([0], np.cumsum(newline_mask(cps))))
    prev_end = np.concatenate(([0], ends[:-1]))
    ws = ws_cum[starts] - ws_cum[prev_end]
    nl = nl_cum[starts] - nl_cum[prev_end]
    out = np.where(ws > 0, GAP_SPACE, GAP_NONE)
    out = np.where(nl > 0, GAP_NEWLINE, out)
    out = np.where(nl > 1, GAP_PARAGRAPH, out)
    return out.astype(np.int8)


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


_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
_UNCLOSED_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*\Z", re.M | re.S)
_INLINE_CODE = re.compile(r"(`+)[^`\n]+?\1")
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
    if protection.code:
        fenced = [m.span() for m in _FENCE.finditer(text)]
        keep.extend(fenced)
        last = fenced[-1][1] if fenced else 0
        m = _UNCLOSED_FENCE.search(text, last)
        if m and not any(a <= m.start() < b for a, b in fenced):
            keep.append(m.span())
        if "`" in text:
            keep.extend(m.span() for m in _INLINE_CODE.finditer(text))
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
    if not spans:
        return np.zeros(starts.size, dtype=bool)
    arr = np.asarray(spans, dtype=np.int64)
    # the last span starting before the unit's end must end after the unit's start
    j = np.searchsorted(arr[:, 0], ends, side="left") - 1
    ok = j >= 0
    return ok & (arr[np.clip(j, 0, None), 1] > starts)
