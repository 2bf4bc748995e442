"""Selection under one global budget, and rendering of the kept units.

A :class:`UnitTable` holds every selection unit of one request (all its documents) as flat
numpy arrays. :mod:`ctxcomp.budget_search` keeps the best units so the rendered text holds
at most the target in reader tokens; ``select_per_chunk`` reproduces LLMLingua-2's
per-512-token-chunk percentile threshold for comparison. Rendering copies
kept runs verbatim from the input and joins runs with the strongest whitespace that stood
between them, so words never fuse and output is always a subsequence of the input.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from .newlines import line_ending, with_line_ending
from .result import KeptSpan
from .text.units import GAP_NONE, GAP_SPACE, SEPARATORS
from .tokens import ReaderTokenizer


@dataclass
class UnitTable:
    texts: list[str]  # one per document
    separator: str  # between documents in the joined text
    doc: np.ndarray  # document index of each unit
    starts: np.ndarray  # char offsets within the document
    ends: np.ndarray
    probs: np.ndarray  # keep probability (ratio-independent score)
    forced: np.ndarray  # kept regardless of the budget
    protected: np.ndarray  # inside a protected span: verbatim, never excluded
    excluded: np.ndarray  # never output (do-not-compress markers themselves)
    force_code: np.ndarray  # >= 0: which force token the unit is (for drop_consecutive)
    gap: np.ndarray  # whitespace class before each unit (ctxcomp.text.units.GAP_*)
    nospace_first: np.ndarray  # unit begins with a no-space-script character
    nospace_last: np.ndarray
    keep_newlines: bool = True
    drop_consecutive: bool = True
    # index of the protected span each unit lies in (-1: none; unique across documents):
    # a span is kept or dropped whole when the budget cannot hold every protected span
    span: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.starts.size)

    def doc_offsets(self) -> np.ndarray:
        lens = np.array([len(t) for t in self.texts], dtype=np.int64)
        return np.concatenate(([0], np.cumsum(lens + len(self.separator))[:-1]))

    def joined(self) -> str:
        return self.separator.join(self.texts)

    @functools.cached_property
    def gap_separators(self) -> tuple[str, ...]:
        """SEPARATORS in the input's line ending (ctxcomp/newlines.py): output never mixes."""
        return tuple(with_line_ending(x, line_ending(self.texts)) for x in SEPARATORS)

    @functools.cached_property
    def sources(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """All documents' code points in one array, followed by the separator strings; the
        documents' offsets in it; where each separator string starts (for rendering)."""
        extra = [x for x in dict.fromkeys((*self.gap_separators[1:], self.separator)) if x]
        allt = "".join(self.texts)
        lens = np.array([len(t) for t in self.texts], dtype=np.int64)
        offs = np.concatenate(([0], np.cumsum(lens)[:-1])) if lens.size else lens
        where: dict[str, int] = {}
        pos = len(allt)
        for x in extra:
            where[x] = pos
            pos += len(x)
        src = np.frombuffer(
            (allt + "".join(extra)).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
        )
        return src, offs, where


@dataclass
class Rendered:
    text: str
    pieces: list[str]
    spans: list[list[KeptSpan]]
    kept: np.ndarray  # final kept mask over units
    # kept runs (document, first unit, last unit), for provenance built after the search
    runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def with_spans(table: UnitTable, r: Rendered) -> Rendered:
    """``r`` with its provenance: one KeptSpan per kept run."""
    if r.runs is None:  # nothing kept
        return r
    run_doc, first, last = r.runs
    made = list(
        map(
            KeptSpan._make,
            zip(run_doc.tolist(), table.starts[first].tolist(), table.ends[last].tolist()),
        )
    )
    cut = np.searchsorted(run_doc, np.arange(len(table.texts) + 1)).tolist()  # runs in doc order
    spans = [made[a:b] for a, b in zip(cut[:-1], cut[1:])]
    return dataclasses.replace(r, spans=spans)


def render(table: UnitTable, mask: np.ndarray, *, spans_too: bool = True) -> Rendered:
    """Text of the units in ``mask`` (after dropping consecutive repeated force tokens).

    ``spans_too=False`` leaves the provenance objects to ``with_spans`` (used while
    searching: only the chosen rendering needs them).
    """
    mask = mask & ~table.excluded
    idx = np.flatnonzero(mask)
    if table.drop_consecutive and idx.size > 1:
        c = table.force_code[idx]
        same = (c[1:] >= 0) & (c[1:] == c[:-1]) & (table.doc[idx[1:]] == table.doc[idx[:-1]])
        if same.any():
            idx = np.concatenate((idx[:1], idx[1:][~same]))
    kept = np.zeros(table.n, dtype=bool)
    kept[idx] = True
    ndoc = len(table.texts)
    pieces = [""] * ndoc
    spans: list[list[KeptSpan]] = [[] for _ in range(ndoc)]
    if idx.size == 0:
        return Rendered("", pieces, spans, kept)
    d = table.doc[idx]
    brk = np.flatnonzero((np.diff(idx) != 1) | (np.diff(d) != 0)) + 1
    first = idx[np.concatenate(([0], brk))]
    last = idx[np.concatenate((brk - 1, [idx.size - 1]))]
    run_doc = table.doc[first]
    new_doc = np.ones(first.size, dtype=bool)
    new_doc[1:] = run_doc[1:] != run_doc[:-1]
    # strongest gap class over the dropped stretch before each run: units prev_last+1..first
    sep_cls = np.zeros(first.size, dtype=np.int64)
    cont = np.flatnonzero(~new_doc)
    if cont.size:
        lo = last[cont - 1] + 1
        hi = first[cont] + 1
        g = np.concatenate((table.gap.astype(np.int64), [0]))
        bounds = np.empty(lo.size * 2, dtype=np.int64)
        bounds[0::2] = lo
        bounds[1::2] = hi
        red = np.maximum.reduceat(g, bounds)[0::2]
        if not table.keep_newlines:
            red = np.minimum(red, GAP_SPACE)
        # Nothing but dropped units between two runs and no whitespace: join with a space
        # unless both sides are in a script written without spaces (never fuse words).
        fuse = (red == GAP_NONE) & ~(
            table.nospace_last[last[cont - 1]] & table.nospace_first[first[cont]]
        )
        red = np.where(fuse, GAP_SPACE, red)
        sep_cls[cont] = red
    text, pieces = _assemble(table, run_doc, new_doc, sep_cls, first, last)
    r = Rendered(text, pieces, spans, kept, (run_doc, first, last))
    return with_spans(table, r) if spans_too else r


def _assemble(
    table: UnitTable,
    run_doc: np.ndarray,
    new_doc: np.ndarray,
    sep_cls: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
) -> tuple[str, list[str]]:
    """The output text and per-document pieces for the kept runs, in one gather over the
    code points (no per-run Python string work)."""
    src, doc_off, where = table.sources
    nrun = first.size
    ndoc = len(table.texts)
    # up to three segments per run: document separator, gap separator, the run's text
    seg_start = np.zeros((nrun, 3), dtype=np.int64)
    seg_len = np.zeros((nrun, 3), dtype=np.int64)
    dsep = table.separator
    if dsep:
        between = new_doc.copy()
        between[0] = False
        seg_start[between, 0] = where[dsep]
        seg_len[between, 0] = len(dsep)
    for c, gsep in enumerate(table.gap_separators[1:], 1):
        m = ~new_doc & (sep_cls == c)
        if m.any():
            seg_start[m, 1] = where[gsep]
            seg_len[m, 1] = len(gsep)
    a = doc_off[run_doc] + table.starts[first]
    seg_start[:, 2] = a
    seg_len[:, 2] = doc_off[run_doc] + table.ends[last] - a
    st, ln = seg_start.ravel(), seg_len.ravel()
    total = int(ln.sum())
    ends = np.cumsum(ln)
    idx = np.arange(total, dtype=np.int64) + np.repeat(st - (ends - ln), ln)
    text = src[idx].tobytes().decode("utf-32-le", "surrogatepass")
    # pieces: each document's span of the output, without the document separator before it
    run_end = ends.reshape(nrun, 3)[:, 2]
    run_begin = run_end - seg_len[:, 2] - seg_len[:, 1]
    pieces = [""] * ndoc
    doc_first = np.flatnonzero(new_doc)
    doc_last = np.concatenate((doc_first[1:] - 1, [nrun - 1]))
    for f, l_ in zip(doc_first.tolist(), doc_last.tolist()):
        pieces[int(run_doc[f])] = text[int(run_begin[f]) : int(run_end[l_])]
    return text, pieces


def unit_costs(
    table: UnitTable, reader: ReaderTokenizer, joined: str, starts: np.ndarray | None = None
) -> np.ndarray:
    """Reader tokens attributed to each unit: tokens of the joined text, by start offset."""
    if starts is None:
        starts = reader.token_starts(joined)
    if table.n == 0:
        return np.zeros(0, dtype=np.int64)
    off = table.doc_offsets()
    gends = off[table.doc] + table.ends
    u = np.searchsorted(gends, starts, side="right")
    u = np.minimum(u, table.n - 1)
    return np.bincount(u, minlength=table.n).astype(np.int64)


def select_per_chunk(
    table: UnitTable,
    chunk_of_unit: np.ndarray,
    reduce_rate: float,
    weights: np.ndarray,
    newline_count: np.ndarray,
) -> Rendered:
    """LLMLingua-2's rule: in each chunk, keep units above the token-weighted percentile.

    ``weights`` are each unit's standalone reader-token count and ``newline_count`` the
    number of forced newline pseudo-words per chunk (the reference maps each newline to a
    forced word of weight 1 when "\\n" is a force token).
    """
    probs = np.where(table.forced, 1.0, table.probs)
    keep = np.zeros(table.n, dtype=bool)
    q = min(100, int(100 * reduce_rate + 1))
    nchunks = int(chunk_of_unit.max()) + 1 if table.n else 0
    order = np.argsort(chunk_of_unit, kind="stable")
    bounds = np.searchsorted(chunk_of_unit[order], np.arange(nchunks + 1))
    for ci in range(nchunks):
        sel = order[bounds[ci] : bounds[ci + 1]]
        if sel.size == 0:
            continue
        p = probs[sel]
        vals = np.repeat(p, np.maximum(weights[sel], 0))
        if newline_count[ci]:
            vals = np.concatenate((vals, np.ones(int(newline_count[ci]))))
        if vals.size == 0:
            continue
        thr = float(np.percentile(vals, q))
        keep[sel] = (p > thr) | ((thr == 1.0) & (p == 1.0))
    keep &= ~table.excluded
    return render(table, keep)


def __getattr__(name: str) -> object:
    if name == "Plan":  # the unit table's old name
        import warnings

        warnings.warn(
            "ctxcomp.selection.Plan is now UnitTable; the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return UnitTable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
