"""Characters and units: code points, scripts written without spaces, digits, newlines,
grapheme clusters, and the class of the gap before each unit (none, space, newline, blank
line) — what the selection must respect when it cuts text into units and joins kept ones.

Everything here works on whole-text numpy arrays (code points, cumulative counts) so the
per-document cost is a handful of vectorised passes, not a Python loop over words.
"""

from __future__ import annotations

import functools

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


# Grapheme cluster break classes a character can join its predecessor's cluster by, or
# let its successor join (UAX #29: Extend, ZWJ, SpacingMark, Prepend, Hangul L/V/T,
# Regional_Indicator). A text with none of them has one cluster per character (CR LF aside,
# which never lies inside a unit).
_JOINERS = r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}\p{GCB=L}\p{GCB=V}\p{GCB=T}\p{GCB=Regional_Indicator}]"
_JOINER_TABLE_END = 0x30000  # planes 0-2 by table; the tags/variation-selector plane 14 below


@functools.lru_cache(maxsize=1)
def _joiner_table() -> np.ndarray:
    """Per code point below ``_JOINER_TABLE_END`` (from U+0300, the first combining mark):
    True when it has one of the joining classes. Built once, by the regex module's own
    Unicode tables (~40 ms)."""
    import regex

    lo = 0x300
    cps = np.arange(lo, _JOINER_TABLE_END)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]  # no surrogates
    chars = cps.astype("<u4").tobytes().decode("utf-32-le")
    table = np.zeros(_JOINER_TABLE_END, dtype=bool)
    hits = [m.start() for m in regex.finditer(_JOINERS, chars)]
    table[cps[np.asarray(hits, dtype=np.int64)]] = True
    return table


def grapheme_starts(text: str, cps: np.ndarray | None = None) -> np.ndarray | None:
    """Offsets at which the text's extended grapheme clusters start, or None when every
    character starts one (ASCII, most Latin, Cyrillic and CJK text: checked with numpy, no
    per-character work). Clusters come from the regex module's ``\\X`` (UAX #29: a letter
    and its combining marks, an Indic syllable, an emoji ZWJ sequence, a flag)."""
    if text.isascii():
        return None
    if cps is None:
        cps = codepoints(text)
    # no joiners among: general punctuation (curly quotes, dashes), CJK ideographs, Hangul
    # syllables (which join only with a following jamo, itself a joiner)
    hi = cps[
        (cps >= 0x300)
        & ~((cps >= 0x2010) & (cps <= 0x205F))
        & ~((cps >= 0x4E00) & (cps <= 0x9FFF))
        & ~((cps >= 0xAC00) & (cps <= 0xD7A3))
    ]
    if hi.size == 0:
        return None
    table = _joiner_table()
    inside = hi < table.size
    if not (table[hi[inside]].any() or (hi[~inside] >= 0xE0000).any()):
        return None
    import regex

    lens = np.fromiter(map(len, regex.findall(r"\X", text)), dtype=np.int64)
    return np.concatenate(([0], np.cumsum(lens)[:-1]))


def snap_to_graphemes(
    starts: np.ndarray, ends: np.ndarray, cluster_starts: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spans widened to whole grapheme clusters: each start moved back to the start of its
    cluster, each end forward to the end of its cluster (``n``: the text's length)."""
    bounds = np.concatenate((cluster_starts, [n]))
    s = bounds[np.maximum(np.searchsorted(bounds, starts, side="right") - 1, 0)]
    e = bounds[np.minimum(np.searchsorted(bounds, ends, side="left"), bounds.size - 1)]
    return s, e


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
