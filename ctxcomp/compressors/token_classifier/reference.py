"""The per-chunk reference mode: LLMLingua-2's own rule (a keep rate per model window,
each word weighed by its reader tokens as the encoder sees it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...selection import Rendered, UnitTable, select_per_chunk
from ...tokens import ReaderTokenizer
from .doc import DocTokens
from .options import TokenClassifierOptions


def per_chunk(
    table: UnitTable,
    dts: list[DocTokens],
    rate: float,
    options: TokenClassifierOptions,
    tok: Any,
    reader: ReaderTokenizer,
) -> Rendered:
    chunk_of_unit = []
    newline_counts = []
    base = 0
    for d in dts:
        nchunk = d.chunk_bounds.size - 1
        tok_chunk = np.searchsorted(d.chunk_bounds, d.unit_first_tok, side="right") - 1
        chunk_of_unit.append(tok_chunk + base)
        newline_counts.append(
            d.newlines_per_chunk if "\n" in options.force_tokens else np.zeros(nchunk, np.int64)
        )
        base += nchunk
    units_text = [
        table.texts[int(di)][a:b] for di, a, b in zip(table.doc, table.starts, table.ends)
    ]
    # LLMLingua-2 weighs each word by the reader tokens of the word as the encoder sees
    # it: its normalizer applied (lowercased, accents stripped for uncased BERT; NFKC
    # for sentencepiece models), without whitespace. Identity for plain cased words.
    norm = getattr(tok, "normalizer", None)
    if norm is not None:
        units_text = ["".join(norm.normalize_str(t).split()) for t in units_text]
    enc = getattr(reader, "encode_batch", None)
    ids = enc(units_text) if enc else [reader.encode(t) for t in units_text]
    weights = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    return select_per_chunk(
        table,
        np.concatenate(chunk_of_unit) if chunk_of_unit else np.zeros(0, np.int64),
        max(0.0, 1.0 - rate),
        weights,
        np.concatenate(newline_counts) if newline_counts else np.zeros(0, np.int64),
    )
