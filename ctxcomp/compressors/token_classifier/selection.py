"""Selection: a request's units in one table (:class:`~ctxcomp.selection.UnitTable`), the coarse
stage's guidance applied (bias, exclusions), then selected under the one global budget
(or per chunk, the reference mode)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ...budget import Budget
from ...budget_search import select_global
from ...core.stage import Guidance
from ...newlines import document_separator
from ...result import CompressionResult
from ...rules import spent_notes
from ...selection import UnitTable, unit_costs
from ...text.protect import overlap_mask
from .doc import DocTokens
from .options import TokenClassifierOptions
from .reference import per_chunk
from .result import Context, build_result
from .shaping import shape_scores


def unit_probs(d: DocTokens, options: TokenClassifierOptions) -> np.ndarray:
    assert d.probs is not None
    p = d.probs.astype(np.float64)
    if options.keep_digits:
        p = np.where(d.digit_tok, 1.0, p)
    if d.unit_starts.size == 0:
        return np.zeros(0)
    valid = d.unit_of_tok >= 0
    pv = p[valid]
    first = np.concatenate(([0], np.cumsum(d.unit_ntok)[:-1]))
    if options.token_to_word == "first":
        return pv[first]
    return np.add.reduceat(pv, first) / d.unit_ntok


def build_unit_table(dts: list[DocTokens], options: TokenClassifierOptions) -> UnitTable:
    o = options
    cat = np.concatenate
    n_spans = np.array([int(d.span.max()) + 1 if d.span.size else 0 for d in dts])
    span_off = np.concatenate(([0], np.cumsum(n_spans)[:-1]))
    return UnitTable(
        texts=[d.text for d in dts],
        separator=document_separator(o.separator, [d.text for d in dts]),
        doc=cat([np.full(d.unit_starts.size, i, dtype=np.int64) for i, d in enumerate(dts)]),
        starts=cat([d.unit_starts for d in dts]),
        ends=cat([d.unit_ends for d in dts]),
        probs=cat([unit_probs(d, o) for d in dts]),
        forced=cat([d.forced for d in dts]),
        protected=cat([d.protected for d in dts]),
        excluded=cat([d.excluded for d in dts]),
        force_code=cat([d.force_code for d in dts]),
        gap=cat([d.gap for d in dts]),
        nospace_first=cat([d.nospace_first for d in dts]),
        nospace_last=cat([d.nospace_last for d in dts]),
        keep_newlines="\n" in o.force_tokens,
        drop_consecutive=o.drop_consecutive,
        span=cat([np.where(d.span >= 0, d.span + off, -1) for d, off in zip(dts, span_off)]),
    )


def select(
    ctx: Context,
    docs: list[Any],
    dts: list[DocTokens],
    n_orig: int,
    b: Budget,
    target: int,
    joined: str,
    g: Guidance,
    token_starts: np.ndarray | None = None,
) -> CompressionResult:
    table = build_unit_table(dts, ctx.options)
    raw = table.probs
    rule = shape_scores(table, ctx.options, ctx.reader, target, joined, token_starts)
    if g.bias is not None and table.n:
        bias = np.zeros(table.n)
        for i, d in enumerate(dts):
            sel = table.doc == i
            if sel.any():
                bias[sel] = g.bias(i, d.text, table.starts[sel], table.ends[sel])
        table.probs = table.probs + bias
    if g.exclude is not None and table.n:
        for i, d in enumerate(dts):
            spans = g.exclude(i, d.text)
            if spans:
                sel = np.flatnonzero(table.doc == i)
                table.excluded[sel] |= (
                    overlap_mask(table.starts[sel], table.ends[sel], spans) & ~table.protected[sel]
                )
    if ctx.options.mode == "global":
        sel = select_global(
            table,
            target,
            ctx.reader,
            joined,
            token_starts,
            on_overflow=ctx.options.on_overflow,
        )
        rendered, n_out = sel.rendered, sel.count
        if sel.notes:
            g = dataclasses.replace(g, notes=(*g.notes, *sel.notes))
    else:
        # the reference turns a ratio straight into its rate; a token target into target/n
        rate = b.ratio if b.ratio is not None else target / n_orig
        rendered = per_chunk(table, dts, rate, ctx.options, ctx.tok, ctx.reader)
        n_out = ctx.reader.count(rendered.text)
    table.probs = raw
    if rule is not None:
        cost = unit_costs(table, ctx.reader, joined, token_starts)
        g = dataclasses.replace(
            g,
            notes=(
                *g.notes,
                *spent_notes(rule, rendered.kept, cost, target, ctx.options.rule_shares),
            ),
        )
    return build_result(ctx, docs, table, rendered, n_orig, n_out, b, target, g, rule)
