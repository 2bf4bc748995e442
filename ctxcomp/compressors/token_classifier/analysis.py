"""Encoder analysis of one document: tokens with character offsets, selection units
(tokenizer words, split at force tokens and no-space scripts), protected spans, force
tokens and the model windows. Pure numpy after the tokenizer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from itertools import chain
from typing import Any

import numpy as np

from ...text.protect import find_protected, overlap_mask, span_index
from ...text.units import (
    codepoints,
    digit_mask,
    gap_classes,
    grapheme_starts,
    katakana_mask,
    newline_mask,
    no_space_mask,
    snap_to_graphemes,
    whitespace_mask,
)
from ..wordpiece_fastpath import (
    WordPieceMemo,
    is_wordpiece_bert,
    plain_text,
    plain_text_tokenizer,
    tokenizer_spec,
)
from .doc import AnalysisMemo, DocTokens, empty_doc
from .options import TokenClassifierOptions
from .windows import BLOCK_CHARS, blank_markers, cut_windows, text_blocks


class Analyzer:
    """Analyses documents for one encoder tokenizer (the options are given per call).

    ``tok`` is the encoder's fast tokenizer (a ``tokenizers.Tokenizer``), ``window`` the
    model's window in tokens; with ``memo`` analyses of recurring texts are kept in an
    in-process LRU (exact text key).
    """

    def __init__(self, tok: Any, window: int, *, memo: bool = False) -> None:
        self.tok = tok
        self.window = int(window)
        spec = tokenizer_spec(tok)  # serialised once for both questions below
        self.tok_plain = plain_text_tokenizer(tok, spec)
        self.words = (
            WordPieceMemo(self.tok_plain, tok)
            if self.tok_plain is not None and is_wordpiece_bert(tok, spec)
            else None
        )
        self.memo = AnalysisMemo() if memo else None

    def tokenize(
        self, text: str, cps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """ids, offsets [T,2] and word ids of ``text``, tokenised in whitespace-cut blocks,
        and whether the offsets are known to hold no whitespace (BERT pre-tokens)."""
        tok = self.tok
        if self.tok_plain is not None and plain_text(text, cps):
            if self.words is not None and self.words.applies(text):
                cps = codepoints(text) if cps is None else cps
                return (*self.words.encode(text, cps), True)
            tok = self.tok_plain
        blocks = text_blocks(text, BLOCK_CHARS)
        encs = tok.encode_batch([text[a:b] for a, b in blocks], add_special_tokens=False)
        ids, offs, wids = [], [], []
        wbase = 0
        for (a, _b), enc in zip(blocks, encs):
            n = len(enc.ids)
            ids.append(np.fromiter(enc.ids, dtype=np.int64, count=n))
            o = np.fromiter(chain.from_iterable(enc.offsets), dtype=np.int64, count=2 * n)
            offs.append(o.reshape(-1, 2) + a)
            wl = enc.word_ids
            if None in wl:  # special or unaligned tokens have no word
                wf = np.array(wl, dtype=np.float64)
                w = np.where(np.isnan(wf), -1, wf + wbase).astype(np.int64)
            else:
                w = np.fromiter(wl, dtype=np.int64, count=n) + wbase
            wbase = int(w.max()) + 1 if w.size and w.max() >= 0 else wbase
            wids.append(w)
        if not ids:
            z = np.zeros(0, np.int64)
            return z, np.zeros((0, 2), np.int64), z, False
        return np.concatenate(ids), np.concatenate(offs), np.concatenate(wids), False

    def build_doc_tokens(self, text: str, o: TokenClassifierOptions) -> DocTokens:
        """Tokenise ``text`` with the encoder tokenizer and build its units, windows and
        protected spans (no memo: see :meth:`doc_tokens`)."""
        cps = codepoints(text)
        keep_spans, marker_spans = find_protected(text, o.protection)
        # the encoder reads keep markers as separate words of their own (same length, so
        # offsets hold): a sentencepiece word never straddles a marker and the text it keeps
        tok_text, tok_cps = text, cps
        if marker_spans:
            tok_text = blank_markers(text, marker_spans)
            tok_cps = codepoints(tok_text)
        ids, offs, wids, trimmed = self.tokenize(tok_text, tok_cps)
        s, e = offs[:, 0].copy(), offs[:, 1].copy()
        # trim whitespace some tokenizers include in offsets (sentencepiece "▁")
        nonws = np.zeros(0, np.int64) if trimmed else np.flatnonzero(~whitespace_mask(tok_cps))
        if nonws.size and s.size:
            j = np.searchsorted(nonws, s)
            nxt = np.where(j < nonws.size, nonws[np.minimum(j, nonws.size - 1)], len(text))
            s = np.minimum(np.maximum(s, nxt), e)
            jb = np.searchsorted(nonws, e, side="left") - 1
            prv = np.where(jb >= 0, nonws[np.maximum(jb, 0)] + 1, 0)
            e = np.maximum(np.minimum(e, prv), s)
        has_text = e > s
        g_starts = grapheme_starts(text, cps)
        if g_starts is not None and has_text.any():
            # whole grapheme clusters: a letter keeps its combining marks, an Indic syllable
            # its vowel signs, even where the tokenizer's normalizer dropped them
            s[has_text], e[has_text] = snap_to_graphemes(
                s[has_text], e[has_text], g_starts, len(text)
            )
        v = np.flatnonzero(has_text)
        T = ids.size
        nospace = no_space_mask(cps)
        kata = katakana_mask(cps)  # a katakana run is one word: never cut it apart
        # force-token sub-tokens: exact text match
        ftok_code = np.full(T, -1, dtype=np.int64)
        for k, ft in enumerate(o.force_tokens):
            if ft.isspace():
                continue  # whitespace force tokens act on separators (see UnitTable.keep_newlines)
            hit = token_is(text, cps, s, e, has_text, ft) & (ftok_code < 0)
            ftok_code[hit] = k
        # units over tokens that carry text
        sv, ev, wv, fv = s[v], e[v], wids[v], ftok_code[v] >= 0
        new = np.ones(v.size, dtype=bool)
        if v.size > 1:
            # a boundary touching a no-space script splits units, except inside a katakana run
            kata_run = kata[sv[1:]] & kata[ev[:-1] - 1] & (sv[1:] == ev[:-1])
            # tokens sharing a grapheme cluster (or a character) are never cut apart
            new[1:] = (sv[1:] >= ev[:-1]) & (
                (sv[1:] > ev[:-1])
                | (wv[1:] != wv[:-1])
                | fv[1:]
                | fv[:-1]
                | ((nospace[sv[1:]] | nospace[ev[:-1] - 1]) & ~kata_run)
            )
        unit_idx_v = np.cumsum(new) - 1
        first_v = np.flatnonzero(new)
        n_units = first_v.size
        unit_of_tok = np.full(T, -1, dtype=np.int64)
        unit_of_tok[v] = unit_idx_v
        u_starts = sv[first_v] if n_units else np.zeros(0, np.int64)
        u_ends = np.maximum.reduceat(ev, first_v) if n_units else np.zeros(0, np.int64)
        u_ntok = np.diff(np.concatenate((first_v, [v.size]))) if n_units else np.zeros(0, np.int64)
        # force codes for units that are exactly one force token
        u_force_code = (
            np.where(u_ntok == 1, ftok_code[v[first_v]], -1) if n_units else np.zeros(0, np.int64)
        )
        u_force_code = np.where(u_force_code >= 0, u_force_code, -1)
        forced = u_force_code >= 0
        dig = digit_mask(cps)
        dig_cum = np.concatenate(([0], np.cumsum(dig)))
        if o.keep_digits and n_units:
            forced |= (dig_cum[u_ends] - dig_cum[u_starts]) > 0
        span = span_index(u_starts, u_ends, keep_spans)
        protected = span >= 0
        forced |= protected
        # protected text is verbatim: its punctuation is not a force token that
        # drop_consecutive or a coarse exclusion may remove
        u_force_code = np.where(protected, -1, u_force_code)
        excluded = overlap_mask(u_starts, u_ends, marker_spans)
        forced &= ~excluded
        gap = gap_classes(cps, u_starts, u_ends)
        # chunks: windows of <= window tokens ending after a chunk-end token
        nl = newline_mask(cps)
        nl_cum = np.concatenate(([0], np.cumsum(nl)))
        end_tok = np.zeros(T, dtype=bool)
        for ct in o.chunk_end_tokens:
            if ct == "\n" and o.mode == "per_chunk" and "\n" not in o.force_tokens:
                continue  # as the reference: without a newline token, "\n" cannot end a chunk
            if ct == "\n":
                nxt_s = np.concatenate((s[1:], [len(text)]))
                end_tok |= (nl_cum[nxt_s] - nl_cum[np.minimum(e, nxt_s)]) > 0
            elif ct:
                end_tok |= token_is(text, cps, s, e, has_text, ct)
        chunk_bounds = cut_windows(T, end_tok, self.window)
        tok_dig = np.zeros(T, dtype=bool)
        if T:
            tok_dig = (dig_cum[e] - dig_cum[s]) > 0
        cb_chars = (
            np.concatenate((s[chunk_bounds[:-1]], [len(text)])) if T else np.zeros(1, np.int64)
        )
        if T:
            cb_chars[0] = 0
        nl_chunk = nl_cum[cb_chars[1:]] - nl_cum[cb_chars[:-1]] if T else np.zeros(0, np.int64)
        return DocTokens(
            text=text,
            ids=ids,
            tok_starts=s,
            tok_ends=e,
            chunk_bounds=chunk_bounds,
            unit_of_tok=unit_of_tok,
            unit_starts=u_starts,
            unit_ends=u_ends,
            unit_first_tok=v[first_v] if n_units else np.zeros(0, np.int64),
            unit_ntok=u_ntok,
            forced=forced,
            protected=protected,
            span=span,
            excluded=excluded,
            force_code=u_force_code,
            gap=gap,
            nospace_first=nospace[u_starts] if n_units else np.zeros(0, bool),
            nospace_last=nospace[u_ends - 1] if n_units else np.zeros(0, bool),
            digit_tok=tok_dig,
            newlines_per_chunk=nl_chunk,
        )

    def request_doc_tokens(
        self, texts: list[str], drop: Mapping[int, str], o: TokenClassifierOptions
    ) -> list[DocTokens]:
        """Analyses of a request's documents; those the coarse stage dropped stay empty."""
        return [empty_doc(t) if i in drop else self.doc_tokens(t, o) for i, t in enumerate(texts)]

    def doc_tokens(self, text: str, o: TokenClassifierOptions) -> DocTokens:
        """A document's :class:`DocTokens`, from the memo when the same text was seen
        (:meth:`build_doc_tokens` computes them)."""
        if self.memo is None:
            return self.build_doc_tokens(text, o)
        d = self.memo.get(text)
        if d is None:
            d = self.build_doc_tokens(text, o)
            self.memo.put(text, d)
        return dataclasses.replace(d, probs=None)  # callers set probs on their own copy


def token_is(
    text: str, cps: np.ndarray, s: np.ndarray, e: np.ndarray, has_text: np.ndarray, tok: str
) -> np.ndarray:
    """Mask of tokens whose text is exactly ``tok``."""
    first = cps[np.minimum(s, max(len(text) - 1, 0))] if len(text) else np.zeros(s.size, np.int64)
    hit = has_text & ((e - s) == len(tok)) & (first == ord(tok[0]))
    if len(tok) > 1:
        for t in np.flatnonzero(hit):
            hit[t] = text[s[t] : e[t]] == tok
    return hit
