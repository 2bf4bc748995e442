"""Cutting text for the encoder: tokenizer blocks, model windows at sentence ends, marker
blanking and excluded-character masks."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# tokenise in blocks: bounded Python-object memory, and blocks run in parallel
BLOCK_CHARS = 4_000


CUT_RE = re.compile(r"(?<=\S) (?=\S)")


def text_blocks(text: str, size: int) -> list[tuple[int, int]]:
    """Cut ``text`` into blocks of about ``size`` characters for the encoder's tokenizer.

    A cut is made only at a single ASCII space between two non-space characters, the space
    starting the next block: every tokenizer family here starts a new pre-token there and
    tokenises " word" at a block start as in running text (WordPiece splits on the space;
    Metaspace turns it into the word's own "▁" and adds no second one). Line breaks are
    not cut at: some sentencepiece vocabularies merge "\n" with the next characters. A text
    without such a space in a window is not cut there (a longer block).
    """
    n = len(text)
    if n <= size:
        return [(0, n)]
    out = []
    a = 0
    while a < n:
        b = min(n, a + size)
        if b < n:
            lo = a + size // 2
            cut = text.rfind(" ", lo, b)
            while cut > lo and (text[cut - 1].isspace() or text[cut + 1].isspace()):
                cut = text.rfind(" ", lo, cut)
            if cut <= lo:  # no cut in the second half: take the next one after b
                after = CUT_RE.search(text, b)
                cut = after.start() if after else n
            b = cut
        out.append((a, b))
        a = b
    return out


def cut_windows(T: int, end_tok: np.ndarray, window: int) -> np.ndarray:
    """Token boundaries of windows of <= ``window`` tokens, each ending at a chunk-end token
    when one lies in the window (greedy, as LLMLingua-2 cuts)."""
    bounds = [0]
    ends = np.flatnonzero(end_tok)
    st = 0
    while st < T:
        if T - st <= window:
            bounds.append(T)
            break
        lim = st + window  # exclusive end if cut hard
        j = np.searchsorted(ends, lim - 1, side="right") - 1
        ed = int(ends[j]) + 1 if j >= 0 and ends[j] >= st else lim
        bounds.append(ed)
        st = ed
    return np.asarray(bounds, dtype=np.int64)


def blank_markers(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each marker span replaced by a same-length run of "#" set off by spaces."""
    parts, pos = [], 0
    for a, b in spans:
        n = b - a
        parts += [text[pos:a], " " + "#" * (n - 2) + " " if n >= 3 else "#" * n]
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def excluded_chars(text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray | None:
    """Character mask of ``spans`` over ``text`` (None when there are none)."""
    if not spans or not text:
        return None
    d = np.zeros(len(text) + 1, np.int64)
    for a, b in spans:
        d[max(a, 0)] += 1
        d[min(b, len(text))] -= 1
    return np.cumsum(d)[: len(text)] > 0
