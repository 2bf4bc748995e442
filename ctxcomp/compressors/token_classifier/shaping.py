"""Score shaping: the selection rules' capped bonuses (neighbour weight, repeat cover,
label cover; :mod:`ctxcomp.rules`) set on a table's unit scores."""

from __future__ import annotations

import re

import numpy as np

from ...rules import (
    RULE_LABEL,
    RULE_NEIGHBOR,
    RULE_REPEAT,
    content_words,
    neighbor_bonus,
    shape,
)
from ...selection import UnitTable, unit_costs
from ...tokens import ReaderTokenizer
from .options import TokenClassifierOptions


def shape_scores(
    table: UnitTable,
    o: TokenClassifierOptions,
    reader: ReaderTokenizer,
    target: int,
    joined: str,
    token_starts: np.ndarray | None,
) -> np.ndarray | None:
    """Selection scores with the rules' capped bonuses (ctxcomp.rules) set on
    ``table.probs``; each unit's rule code, or None when no rule is on."""
    if table.n < 2 or not (o.neighbor_weight or o.repeat_cover or o.label_cover):
        return None
    raw = table.probs
    bonuses: dict[int, np.ndarray] = {}
    if o.neighbor_weight:
        bonuses[RULE_NEIGHBOR] = neighbor_bonus(raw, table.forced, table.doc, o.neighbor_weight)
    lab = label_lines(table, o.label_scope) if o.label_cover else None
    if o.repeat_cover:
        rep = first_of_repeats(table) * content_words(
            table.texts, table.doc, table.starts, table.ends
        )
        if lab is not None:  # label lines have their own order: no word cover inside
            rep[lab > 0] = 0.0
        bonuses[RULE_REPEAT] = o.repeat_cover * rep
    if lab is not None:
        bonuses[RULE_LABEL] = o.label_cover * lab
    cost = unit_costs(table, reader, joined, token_starts)
    table.probs, rule = shape(raw, bonuses, cost, target, o.rule_shares)
    return rule


WORDLIKE = re.compile(r"\w+")


def first_of_repeats(table: UnitTable) -> np.ndarray:
    """1.0 at the best-scored selectable occurrence of every word (case-folded; units that
    are letters/digits only) occurring at least twice among the table's selectable units."""
    sel = np.flatnonzero(~table.forced & ~table.excluded)
    out = np.zeros(table.n)
    if sel.size < 2:
        return out
    texts, starts, ends, doc = table.texts, table.starts[sel], table.ends[sel], table.doc[sel]
    words = [
        texts[d][a:b].casefold() for d, a, b in zip(doc.tolist(), starts.tolist(), ends.tolist())
    ]
    wordlike = np.fromiter(
        (WORDLIKE.fullmatch(w) is not None for w in words), bool, count=len(words)
    )
    _, inv, counts = np.unique(
        np.array(words, dtype=object), return_inverse=True, return_counts=True
    )
    rep = wordlike & (counts[inv] >= 2)
    if not rep.any():
        return out
    cand = np.flatnonzero(rep)
    out[sel[cand[best_of_groups(inv[cand], table.probs[sel][cand])]]] = 1.0
    return out


def best_of_groups(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the highest-scored member of each group (ties: the first)."""
    order = np.lexsort((np.arange(group.size), -score, group))
    head = np.ones(order.size, bool)
    head[1:] = group[order][1:] != group[order][:-1]
    return order[head]


LABEL_MAX_WORDS = 6
LABEL_MINFIELD_LINES = 3
FIELD_LINE = re.compile(r"(?m)^[ \t]*([^\W\d_][\w ()/'-]{0,30}?)[ \t]*:[ \t]*(\S[^\n]*?)[ \t]*$")


def label_lines(table: UnitTable, scope: str) -> np.ndarray:
    """Label lines' selectable units (see ``TokenClassifierOptions.label_cover``): 2.0 on the
    best-scored occurrence of each distinct line; with scope "all" 1.0 on the others. Scores
    below are at most 2 (probability + repeat_cover), so with ``label_cover=1`` each label
    line is kept once before anything else, and its other occurrences compete with the
    recurring words."""
    out = np.zeros(table.n)
    lines: list[tuple[int, int, int, str, str]] = []  # doc, start, end, field, value
    for di, text in enumerate(table.texts):
        if ":" in text:
            for m in FIELD_LINE.finditer(text):
                field = " ".join(m.group(1).casefold().split())
                lines.append((di, m.start(1), m.end(2), field, " ".join(m.group(2).split())))
    sizes: dict[str, list[int]] = {}
    for _, _, _, f, v in lines:
        sizes.setdefault(f, []).append(len(v.split()))
    # label fields: at least three lines, values mostly short ("Type", not "Question")
    fields = {
        f
        for f, n in sizes.items()
        if len(n) >= LABEL_MINFIELD_LINES and float(np.median(n)) <= LABEL_MAX_WORDS
    }
    lines = [x for x in lines if x[3] in fields and len(x[4].split()) <= LABEL_MAX_WORDS]
    if not lines:
        return out
    # units of each line: positions in the joined text, one sorted array for all documents
    offs = table.doc_offsets()
    pos = offs[table.doc] + table.starts
    ldoc = np.fromiter((x[0] for x in lines), np.int64, count=len(lines))
    i0 = np.searchsorted(pos, offs[ldoc] + np.fromiter((x[1] for x in lines), np.int64), "left")
    i1 = np.searchsorted(pos, offs[ldoc] + np.fromiter((x[2] for x in lines), np.int64), "left")
    selectable = ~table.forced & ~table.excluded
    sel = selectable.astype(np.float64)
    n_sel = np.concatenate(([0.0], np.cumsum(sel)))
    p_sel = np.concatenate(([0.0], np.cumsum(table.probs * sel)))
    cnt = n_sel[i1] - n_sel[i0]
    mean = np.where(cnt > 0, (p_sel[i1] - p_sel[i0]) / np.maximum(cnt, 1.0), -np.inf)
    _, key = np.unique(
        np.array([f"{x[3]}\0{x[4].casefold()}" for x in lines], dtype=object),
        return_inverse=True,
    )
    pick = best_of_groups(key, mean)  # each distinct line's best-scored occurrence

    def covered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        c = np.zeros(table.n + 1, np.int64)
        np.add.at(c, a, 1)
        np.add.at(c, b, -1)
        return (np.cumsum(c)[:-1] > 0) & selectable

    out[covered(i0[pick], i1[pick])] = 2.0
    if scope == "all":  # the other occurrences next: each label once before any twice
        out[covered(i0, i1) & (out == 0.0)] = 1.0
    return out
