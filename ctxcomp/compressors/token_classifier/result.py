"""Result building: a :class:`~ctxcomp.CompressionResult` from a selection, or from a
request returned unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...budget import Budget
from ...core.stage import Guidance
from ...newlines import document_separator
from ...result import CompressionResult, DocumentResult, UnitScores
from ...selection import Rendered, UnitTable
from ...tokens import ReaderTokenizer, count_many
from .options import TokenClassifierOptions


@dataclass(frozen=True)
class Context:
    """What selection and result building need to know of the compressor for one call."""

    name: str
    config_hash: str
    options: TokenClassifierOptions
    reader: ReaderTokenizer
    tok: Any  # the encoder's fast tokenizer (the reference mode reads its normalizer)


def build_result(
    ctx: Context,
    docs: list[Any],
    table: UnitTable,
    rendered: Rendered,
    n_orig: int,
    n_out: int,
    b: Budget,
    target: int,
    g: Guidance,
    rule: np.ndarray | None = None,
) -> CompressionResult:
    notes = g.notes
    if len(docs) == 1:  # the whole text is the one document: counts are known
        per_doc_in, per_doc_out = [n_orig], [n_out]
    else:
        per_doc_in = count_many(ctx.reader, [d.text for d in docs])
        per_doc_out = count_many(ctx.reader, rendered.pieces)
    scores = []
    for i in range(len(docs)):
        sel = table.doc == i
        scores.append(
            UnitScores(
                starts=table.starts[sel],
                ends=table.ends[sel],
                probs=table.probs[sel].astype(np.float32),
                kept=rendered.kept[sel],
                forced=table.forced[sel],
                rule=None if rule is None else rule[sel],
            )
        )
    dropped = [i for i, s in enumerate(rendered.spans) if not s and i not in g.drop]
    if dropped:
        notes = (*notes, f"documents dropped entirely by the budget: {dropped}")
    return CompressionResult(
        text=rendered.text,
        documents=tuple(
            DocumentResult(
                index=i,
                text=rendered.pieces[i],
                original_tokens=per_doc_in[i],
                compressed_tokens=per_doc_out[i],
                kept_spans=tuple(rendered.spans[i]),
                metadata=docs[i].metadata,
                **g.doc_info(i, dropped_by_budget=i in dropped),
            )
            for i in range(len(docs))
        ),
        original_tokens=n_orig,
        compressed_tokens=n_out,
        budget=b,
        target_tokens=target,
        reader=ctx.reader.name,
        compressor=ctx.name,
        config_hash=ctx.config_hash,
        mode=ctx.options.mode,
        question_aware=g.question_aware,
        notes=notes,
        scores=tuple(scores),
        separator=table.separator,
    )


def unchanged_result(
    ctx: Context,
    docs: list[Any],
    joined: str,
    n_orig: int,
    b: Budget,
    target: int,
    g: Guidance,
) -> CompressionResult:
    from ...result import KeptSpan

    counts = [n_orig] if len(docs) == 1 else count_many(ctx.reader, [d.text for d in docs])
    return CompressionResult(
        text=joined,
        documents=tuple(
            DocumentResult(
                index=i,
                text=d.text,
                original_tokens=counts[i],
                compressed_tokens=counts[i],
                kept_spans=(KeptSpan(i, 0, len(d.text)),) if d.text else (),
                metadata=d.metadata,
                **g.doc_info(i, dropped_by_budget=False, unchanged=True),
            )
            for i, d in enumerate(docs)
        ),
        original_tokens=n_orig,
        compressed_tokens=n_orig,
        budget=b,
        target_tokens=target,
        reader=ctx.reader.name,
        compressor=ctx.name,
        config_hash=ctx.config_hash,
        mode=ctx.options.mode,
        question_aware=g.question_aware,
        notes=(*g.notes, "budget at or above the input size: returned unchanged"),
        separator=document_separator(ctx.options.separator, [d.text for d in docs]),
    )
