"""Cutting documents into short segments of the LM's own tokens, and rows per segment.

CompLLM compresses every segment on its own, so segments must be short (S ≈ 20 tokens),
exact (a segment's ids are the LM tokens of its text, and the segments of a document are
its tokenisation cut at token boundaries) and stable (the cuts depend only on the text:
sentence ends first, then word starts, then a hard cut at S tokens).

``<ctxcomp:keep>…</ctxcomp:keep>`` spans are never compressed: they come out as
verbatim pieces, and the text between them is segmented.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BudgetError, InputError

KEEP_OPEN = "<ctxcomp:keep>"
KEEP_CLOSE = "</ctxcomp:keep>"
RATE_STEP = 0.25  # rates are chosen on this grid, so a segment's row count is stable
_SENT_END = re.compile(r"[.!?。！？][\"')\]]*$")


@dataclass(frozen=True)
class Segment:
    """``documents[document].text[start:end]``, as the LM's token ids."""

    document: int
    start: int
    end: int
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Verbatim:
    """A ``<ctxcomp:keep>`` span (markers removed): read by the LM as text."""

    document: int
    start: int
    end: int
    text: str


Piece = Segment | Verbatim


def keep_spans(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, verbatim) runs of ``text`` with the keep markers cut out; an unclosed
    marker keeps everything after it."""
    out: list[tuple[int, int, bool]] = []
    pos = 0
    while True:
        a = text.find(KEEP_OPEN, pos)
        if a < 0:
            break
        b = text.find(KEEP_CLOSE, a + len(KEEP_OPEN))
        if a > pos:
            out.append((pos, a, False))
        inner = a + len(KEEP_OPEN)
        end = len(text) if b < 0 else b
        if end > inner:
            out.append((inner, end, True))
        pos = len(text) if b < 0 else b + len(KEEP_CLOSE)
    if pos < len(text):
        out.append((pos, len(text), False))
    return out


def _tokenize(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = [int(i) for i in enc["input_ids"]]
    offs = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    return ids, offs


def _cuts(text: str, offs: list[tuple[int, int]], max_tokens: int) -> list[int]:
    """Token indices where segments end (the last is ``len(offs)``)."""
    n = len(offs)
    sent = [False] * (n + 1)
    word = [False] * (n + 1)
    sent[n] = word[n] = True
    for i in range(1, n):
        prev_end, start = offs[i - 1][1], offs[i][0]
        gap = text[prev_end:start] if start >= prev_end else ""
        tok_text = text[offs[i][0] : offs[i][1]]
        starts_word = (bool(gap) and gap[-1:].isspace()) or tok_text[:1].isspace()
        word[i] = starts_word
        before = text[offs[i - 1][0] : offs[i - 1][1]].rstrip()
        breaks = gap + text[offs[i][0] : offs[i][1]]
        sent[i] = starts_word and (bool(_SENT_END.search(before)) or "\n\n" in breaks)
    cuts: list[int] = []
    a = 0
    while a < n:
        if n - a <= max_tokens:
            cuts.append(n)
            break
        lo, hi = a + max(1, max_tokens // 2), a + max_tokens
        b = next((j for j in range(hi, lo - 1, -1) if sent[j]), None)
        if b is None:
            b = next((j for j in range(hi, lo - 1, -1) if word[j]), hi)
        cuts.append(b)
        a = b
    return cuts


def segment_documents(
    tokenizer: Any, texts: Sequence[str], max_tokens: int = 20
) -> tuple[list[Piece], int]:
    """Pieces of every document, in order, and the number of context tokens (segments'
    tokens plus the verbatim spans' tokens, in the LM's tokenizer)."""
    if max_tokens < 2:
        raise InputError(f"segment length must be at least 2 tokens, got {max_tokens}")
    pieces: list[Piece] = []
    total = 0
    for d, text in enumerate(texts):
        if not text.strip():
            raise InputError(f"document {d} is empty: there is nothing to compress")
        for a, b, verbatim in keep_spans(text):
            chunk = text[a:b]
            if verbatim:
                pieces.append(Verbatim(d, a, b, chunk))
                total += len(tokenizer.encode(chunk, add_special_tokens=False))
                continue
            ids, offs = _tokenize(tokenizer, chunk)
            total += len(ids)
            s = 0
            for e in _cuts(chunk, offs, max_tokens):
                seg_ids = ids[s:e]
                if seg_ids:
                    pieces.append(Segment(d, a + offs[s][0], a + offs[e - 1][1], tuple(seg_ids)))
                s = e
    return pieces, total


def rows_for(n_tokens: int, rate: float) -> int:
    """Concept-embedding rows for a segment of ``n_tokens`` at compression ``rate``."""
    return max(1, math.ceil(n_tokens / rate - 1e-9))


def choose_rate(
    lengths: Sequence[int], target_rows: int, min_rate: float, max_rate: float
) -> float:
    """The smallest rate on the :data:`RATE_STEP` grid, at least ``min_rate``, whose rows
    fit ``target_rows``; :class:`BudgetError` when even ``max_rate`` does not fit."""
    if not lengths:
        return min_rate
    n = sum(lengths)
    r = max(min_rate, math.ceil(n / max(target_rows, 1) / RATE_STEP - 1e-9) * RATE_STEP)
    while r <= max_rate + 1e-9:
        if sum(rows_for(x, r) for x in lengths) <= target_rows:
            return r
        r += RATE_STEP
    best = sum(rows_for(x, max_rate) for x in lengths)
    raise BudgetError(
        f"a budget of {target_rows} positions is below what this compressor reaches: "
        f"{n} context tokens in {len(lengths)} segments need {best} rows at its highest "
        f"rate ({max_rate:g}x); raise the budget (or keep fewer verbatim spans)"
    )
