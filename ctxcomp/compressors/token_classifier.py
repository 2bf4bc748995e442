"""LLMLingua-2-style compression: a bidirectional encoder labels every word keep/drop.

Flow for a batch of prompts: tokenise every document with the encoder's fast tokenizer
(character offsets kept), group sub-tokens into selection units (tokenizer words, split
further at force tokens and at characters of scripts written without spaces), cut each
document into windows that end at sentence or line ends, run all windows of all prompts
through the model sorted by length (no padding waste), average sub-token keep
probabilities into unit probabilities, and select under one global budget counted in the
reader's tokens. Everything after the forward is numpy over whole documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from ..budget import Budget
from ..budget_search import OVERFLOW_POLICIES, select_global
from ..errors import InputError
from ..newlines import document_separator
from ..result import CompressionResult, Document, DocumentResult, UnitScores
from ..reuse import ArrayLRU
from ..rules import (
    RULE_LABEL,
    RULE_NEIGHBOR,
    RULE_REPEAT,
    RuleShares,
    content_words,
    neighbor_bonus,
    shape,
    spent_notes,
)
from ..selection import Plan, Rendered, select_per_chunk, unit_costs
from ..structure import (
    Protection,
    codepoints,
    digit_mask,
    find_protected,
    gap_classes,
    grapheme_starts,
    katakana_mask,
    newline_mask,
    no_space_mask,
    overlap_mask,
    snap_to_graphemes,
    span_index,
    whitespace_mask,
)
from ..tokens import DEFAULT_READER, ReaderTokenizer, count_many, get_tokenizer
from ._plain import (
    WordPieceMemo,
    is_wordpiece_bert,
    plain_text,
    plain_text_tokenizer,
    tokenizer_spec,
)
from .base import Compressor, Guidance, ProgressCallback

DEFAULT_FORCE_TOKENS: tuple[str, ...] = ("\n", "?", "!", ".")
DEFAULT_SCORE_MEMO_BYTES = 32 << 20  # ~4M tokens of window probabilities (4 B + 4 B key each)
DEFAULT_CHUNK_END_TOKENS: tuple[str, ...] = (".", "\n")
MODES = ("global", "per_chunk")
# tokenise in blocks: bounded Python-object memory, and blocks run in parallel
_BLOCK_CHARS = 4_000


@dataclass(frozen=True)
class TokenClassifierOptions:
    """Everything besides the model that decides what is kept."""

    force_tokens: tuple[str, ...] = DEFAULT_FORCE_TOKENS
    keep_digits: bool = False
    drop_consecutive: bool = True
    token_to_word: str = "mean"  # or "first"
    mode: str = "global"  # or "per_chunk" (LLMLingua-2's per-window threshold)
    chunk_end_tokens: tuple[str, ...] = DEFAULT_CHUNK_END_TOKENS
    protection: Protection = field(default_factory=Protection)
    separator: str = "\n\n"
    # Selection score = (1 - w) * own probability + w * the likelier neighbour's (within the
    # document; forced units are not neighbours). w > 0 keeps phrases whole: a word next to
    # a kept word is cheaper to keep than one alone (names, dates, "Bank of America").
    # 0 = LLMLingua-2's rule; the shipped default model sets 0.5 (docs/model-card.md).
    neighbor_weight: float = 0.0
    # Added to the selection score of the best-scored occurrence of every word that occurs
    # more than once in the request (case-folded letters-and-digits words): a recurring
    # word keeps at least one occurrence before the budget goes to rarer words' second
    # ones. Few-shot labels, recurring names and terms repeat; an answer that is one of
    # them needs it once. 0 = off.
    repeat_cover: float = 0.0
    # Added to the selection score of the words of "label lines": short "Field: value"
    # lines (a value of at most LABEL_MAX_WORDS words) of a field that starts at least three
    # lines of the request with values of at most that median length ("Type: Other
    # location", "Sentiment: negative", "Answer: Paris" in a few-shot prompt; not its
    # "Question: ..." lines). The best-scored occurrence of each distinct line gets +2c; with
    # scope "all" every other occurrence +c (each label once before any twice, then all of
    # them). The label lines are what a reader copies the answer's format and label set from,
    # and they are cheap next to the examples. 0 = off.
    label_cover: float = 0.0
    label_scope: str = "best"  # or "all"
    # When force tokens and protected spans alone exceed the budget: "degrade" keeps or drops
    # each protected span whole and, if still needed, keeps force tokens only after kept
    # words (every decision in the result's notes); "error" raises BudgetError.
    on_overflow: str = "degrade"

    # the most of the target each rule's bonus units may cost (ctxcomp.rules)
    rule_shares: RuleShares = field(default_factory=RuleShares)

    def __post_init__(self) -> None:
        if self.on_overflow not in OVERFLOW_POLICIES:
            raise InputError(
                f"on_overflow must be one of {OVERFLOW_POLICIES}, got {self.on_overflow!r}"
            )
        if isinstance(self.rule_shares, Mapping):  # from a JSON/TOML config
            object.__setattr__(self, "rule_shares", RuleShares(**self.rule_shares))
        if not isinstance(self.rule_shares, RuleShares):
            raise InputError(f"rule_shares must be a RuleShares, got {self.rule_shares!r}")
        if not 0.0 <= float(self.neighbor_weight) < 1.0:
            raise InputError(f"neighbor_weight must be in [0, 1), got {self.neighbor_weight!r}")
        if not 0.0 <= float(self.repeat_cover) <= 1.0:
            raise InputError(f"repeat_cover must be in [0, 1], got {self.repeat_cover!r}")
        if not 0.0 <= float(self.label_cover) <= 1.0:
            raise InputError(f"label_cover must be in [0, 1], got {self.label_cover!r}")
        if self.label_scope not in ("best", "all"):
            raise InputError(f"label_scope must be 'best' or 'all', got {self.label_scope!r}")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.token_to_word not in ("mean", "first"):
            raise InputError(f"token_to_word must be 'mean' or 'first', got {self.token_to_word!r}")
        for t in self.force_tokens:
            if not isinstance(t, str) or not t:
                raise InputError(f"force tokens must be non-empty strings, got {t!r}")


@dataclass
class _DocTokens:
    """Encoder tokens of one document, with offsets, and the units built on them."""

    text: str
    ids: np.ndarray  # int64 [T]
    tok_starts: np.ndarray  # [T] char offsets (whitespace trimmed)
    tok_ends: np.ndarray
    chunk_bounds: np.ndarray  # [C+1] token indices
    unit_of_tok: np.ndarray  # [T] unit index, -1 for tokens without text
    unit_starts: np.ndarray
    unit_ends: np.ndarray
    unit_first_tok: np.ndarray
    unit_ntok: np.ndarray
    forced: np.ndarray
    protected: np.ndarray  # inside a protected span (verbatim, never excluded)
    span: np.ndarray  # index of that protected span (-1: none)
    excluded: np.ndarray
    force_code: np.ndarray
    gap: np.ndarray
    nospace_first: np.ndarray
    nospace_last: np.ndarray
    digit_tok: np.ndarray  # [T] token text has a digit
    newlines_per_chunk: np.ndarray  # [C]
    probs: np.ndarray | None = None  # [T] keep probability per token


class TokenClassifierCompressor(Compressor):
    """Keep/drop word classification with any Hugging Face token-classification model.

    ``model`` is a hub id (e.g. ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``),
    a local directory, or an already loaded ``PreTrainedModel`` (then pass ``tokenizer``).
    ``keep_label`` is the label index meaning "keep" (1 for LLMLingua-2 checkpoints).
    ``backend`` is ``"torch"`` (fp32; fp16 on CUDA), ``"torch-bf16"`` (bfloat16 weights and
    activations: CPUs with AVX512-BF16 or AMX, and GPUs), ``"onnx"`` (ONNX Runtime with
    fused attention, CPU), or the lossy ``"torch-int8"`` / ``"onnx-int8"`` (dynamic int8
    quantisation, CPU). docs/performance.md measures each.
    """

    name = "token-classifier"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        revision: str | None = None,
        device: str = "auto",
        backend: str = "torch",
        keep_label: int = 1,
        batch_tokens: int | None = None,
        max_chunk_tokens: int | None = None,
        reader: str | ReaderTokenizer = DEFAULT_READER,
        options: TokenClassifierOptions | None = None,
        local_files_only: bool | None = None,
        cache: Any = None,
        namespace: str = "default",
        score_memo_bytes: int = DEFAULT_SCORE_MEMO_BYTES,
        **option_overrides: Any,
    ) -> None:
        super().__init__(reader=reader)
        if options is None:
            options = TokenClassifierOptions(**_norm_overrides(option_overrides))
        elif option_overrides:
            raise InputError("pass options=... or individual option keywords, not both")
        self.options = options
        self._reader = get_tokenizer(reader)
        self.keep_label = int(keep_label)
        from ._hf import load_token_classifier  # torch/transformers imported here, not at import

        self._model = load_token_classifier(
            model,
            tokenizer,
            revision=revision,
            device=device,
            backend=backend,
            keep_label=self.keep_label,
            batch_tokens=batch_tokens,
            local_files_only=local_files_only,
            max_chunk_tokens=max_chunk_tokens,
        )
        self._tok = self._model.backend_tokenizer
        spec = tokenizer_spec(self._tok)  # serialised once for both questions below
        self._tok_plain = plain_text_tokenizer(self._tok, spec)
        self._words = (
            WordPieceMemo(self._tok_plain, self._tok)
            if self._tok_plain is not None and is_wordpiece_bert(self._tok, spec)
            else None
        )
        self._window = self._model.max_chunk_tokens
        self.cache, self.namespace = self._cache_init(cache, namespace)
        # with a cache, recurring documents also skip tokenisation: an in-process LRU of
        # their analyses (exact text key; bounded by encoder tokens held)
        self._memo = _AnalysisMemo() if self.cache is not None else None
        # without a cache, windows' keep probabilities are reused in-process (exact token ids
        # as the key): a second question over a document does not run the model again
        self._scores = ArrayLRU(score_memo_bytes) if self.cache is None else None

    # -- public -----------------------------------------------------------------------

    @property
    def model_info(self) -> dict[str, Any]:
        return self._model.info()

    def config(self) -> dict[str, Any]:
        o = self.options
        return {
            "model": self._model.fingerprint,
            "backend": self._model.backend,
            "keep_label": self.keep_label,
            "window": self._window,
            "reader": self._reader.name,
            "force_tokens": list(o.force_tokens),
            "keep_digits": o.keep_digits,
            "drop_consecutive": o.drop_consecutive,
            "token_to_word": o.token_to_word,
            "mode": o.mode,
            "chunk_end_tokens": list(o.chunk_end_tokens),
            "protection": o.protection.fingerprint(),
            "separator": o.separator,
            **({"neighbor_weight": o.neighbor_weight} if o.neighbor_weight else {}),
            **(
                {"rules": "capped-v1", "rule_shares": dataclasses.asdict(o.rule_shares)}
                if (o.neighbor_weight or o.repeat_cover or o.label_cover)
                else {}
            ),
            **({"repeat_cover": o.repeat_cover} if o.repeat_cover else {}),
            **(
                {"label_cover": o.label_cover, "label_scope": o.label_scope}
                if o.label_cover
                else {}
            ),
            **({"on_overflow": o.on_overflow} if o.on_overflow != "degrade" else {}),
        }

    def compress_batch(
        self,
        prompts: Sequence[Any],
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[CompressionResult]:
        b, requests = self._prepare(prompts, ratio, target_tokens, budget, question)
        notes: tuple[str, ...] = ()
        if question is not None and question.strip():
            notes = (
                "question ignored: the token classifier is question-agnostic; "
                "its keep probabilities do not depend on the question",
            )
        return self._compress_requests(
            requests, b, [Guidance(notes=notes)] * len(requests), progress
        )

    def _compress_requests(
        self,
        requests: list[list[Document]],
        b: Budget,
        guidance: Sequence[Guidance],
        progress: ProgressCallback | None = None,
    ) -> list[CompressionResult]:
        """Compress prepared documents; ``guidance`` (one per request) comes from a coarse stage."""
        results: list[CompressionResult | None] = [None] * len(requests)
        pending: list[tuple[int, list[_DocTokens], int, int, str]] = []
        gs = list(guidance)
        seps = [document_separator(self.options.separator, [d.text for d in r]) for r in requests]
        joins = [sep.join(d.text for d in docs) for sep, docs in zip(seps, requests)]
        # reader token starts of each joined text; for long texts counted on a second thread
        # while this one runs the encoder's tokenizer (both release the GIL)
        starts_of = _ReaderStarts(self._reader, joins)
        for ri, docs in enumerate(requests):
            g = gs[ri]
            texts = [d.text for d in docs]
            empty = {
                i: "empty document"
                for i, t in enumerate(texts)
                if not t.strip() and i not in g.drop
            }
            g_fine = dataclasses.replace(g, drop={**g.drop, **empty}) if empty else g
            # with the reader counting on a second thread, analyse meanwhile; else count
            # first, so an unchanged request is never analysed
            dts = self._analyse_docs(texts, g_fine.drop) if starts_of.background else None
            n_orig = int(starts_of[ri].size)
            target = b.resolve(n_orig)
            if target >= n_orig:
                results[ri] = self._unchanged(docs, joins[ri], n_orig, b, target, g)
                continue
            gs[ri] = g_fine
            if dts is None:
                dts = self._analyse_docs(texts, g_fine.drop)
            pending.append((ri, dts, n_orig, target, joins[ri]))
        # windows wholly inside spans the coarse stage excluded are never scored
        skip = []
        for ri, dts, _, _, _ in pending:
            ex = gs[ri].exclude
            skip += [
                _excluded_chars(dt.text, ex(di, dt.text) if ex else []) for di, dt in enumerate(dts)
            ]
        self._score([dt for _, dts, _, _, _ in pending for dt in dts], progress, skip)
        for ri, dts, n_orig, target, joined in pending:
            results[ri] = self._select(
                requests[ri], dts, n_orig, b, target, joined, gs[ri], starts_of.pop(ri)
            )
        return [r for r in results if r is not None]

    # -- analysis ---------------------------------------------------------------------

    def _tokenize(
        self, text: str, cps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """ids, offsets [T,2] and word ids of ``text``, tokenised in whitespace-cut blocks,
        and whether the offsets are known to hold no whitespace (BERT pre-tokens)."""
        tok = self._tok
        if self._tok_plain is not None and plain_text(text, cps):
            if self._words is not None and self._words.applies(text):
                cps = codepoints(text) if cps is None else cps
                return (*self._words.encode(text, cps), True)
            tok = self._tok_plain
        blocks = _blocks(text, _BLOCK_CHARS)
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

    def _analyse(self, text: str) -> _DocTokens:
        o = self.options
        cps = codepoints(text)
        keep_spans, marker_spans = find_protected(text, o.protection)
        # the encoder reads keep markers as separate words of their own (same length, so
        # offsets hold): a sentencepiece word never straddles a marker and the text it keeps
        tok_text, tok_cps = text, cps
        if marker_spans:
            tok_text = _blank_markers(text, marker_spans)
            tok_cps = codepoints(tok_text)
        ids, offs, wids, trimmed = self._tokenize(tok_text, tok_cps)
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
                continue  # whitespace force tokens act on separators (see Plan.keep_newlines)
            hit = self._token_is(text, cps, s, e, has_text, ft) & (ftok_code < 0)
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
                end_tok |= self._token_is(text, cps, s, e, has_text, ct)
        chunk_bounds = _chunk(T, end_tok, self._window)
        tok_dig = np.zeros(T, dtype=bool)
        if T:
            tok_dig = (dig_cum[e] - dig_cum[s]) > 0
        cb_chars = (
            np.concatenate((s[chunk_bounds[:-1]], [len(text)])) if T else np.zeros(1, np.int64)
        )
        if T:
            cb_chars[0] = 0
        nl_chunk = nl_cum[cb_chars[1:]] - nl_cum[cb_chars[:-1]] if T else np.zeros(0, np.int64)
        return _DocTokens(
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

    def _analyse_docs(self, texts: list[str], drop: Mapping[int, str]) -> list[_DocTokens]:
        """Analyses of a request's documents; those the coarse stage dropped stay empty."""
        return [_empty_doc(t) if i in drop else self._analysed(t) for i, t in enumerate(texts)]

    def _analysed(self, text: str) -> _DocTokens:
        if self._memo is None:
            return self._analyse(text)
        d = self._memo.get(text)
        if d is None:
            d = self._analyse(text)
            self._memo.put(text, d)
        return dataclasses.replace(d, probs=None)  # callers set probs on their own copy

    @staticmethod
    def _token_is(
        text: str, cps: np.ndarray, s: np.ndarray, e: np.ndarray, has_text: np.ndarray, tok: str
    ) -> np.ndarray:
        """Mask of tokens whose text is exactly ``tok``."""
        first = (
            cps[np.minimum(s, max(len(text) - 1, 0))] if len(text) else np.zeros(s.size, np.int64)
        )
        hit = has_text & ((e - s) == len(tok)) & (first == ord(tok[0]))
        if len(tok) > 1:
            for t in np.flatnonzero(hit):
                hit[t] = text[s[t] : e[t]] == tok
        return hit

    # -- model ------------------------------------------------------------------------

    def _score(
        self,
        docs: list[_DocTokens],
        progress: ProgressCallback | None,
        skip: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """Keep probabilities of every window; with ``skip`` (per document, a character
        mask of excluded text, or None) windows whose tokens all lie in excluded text are
        left at 0: their units are never kept."""
        windows: list[np.ndarray] = []
        owner: list[tuple[int, int, int]] = []
        for di, d in enumerate(docs):
            cb = d.chunk_bounds
            ex = skip[di] if skip is not None else None
            for a, b in zip(cb[:-1], cb[1:]):
                if (
                    ex is not None
                    and b > a
                    and ex[np.minimum(d.tok_starts[a:b], ex.size - 1)].all()
                ):
                    continue
                windows.append(d.ids[a:b])
                owner.append((di, int(a), int(b)))
        for d in docs:
            d.probs = np.zeros(d.ids.size, dtype=np.float32)
        if not windows:
            return
        if self.cache is not None:
            probs = self._cache_predict(docs, owner, windows, progress)
        else:
            probs = self._predict_reusing(windows, progress)
        for (di, a, b), p in zip(owner, probs):
            docs[di].probs[a:b] = p  # type: ignore[index]

    def _predict_reusing(
        self, windows: list[np.ndarray], progress: ProgressCallback | None
    ) -> list[np.ndarray]:
        """The model's probabilities of ``windows``, each distinct window scored once and
        kept in the in-process memo for later requests."""
        memo = self._scores
        if memo is None or memo.max_bytes <= 0:
            return self._model.predict(windows, progress=progress)
        keys = [w.astype("<i4").tobytes() for w in windows]
        got = memo.get_many(keys)
        todo = list({k: i for i, k in reversed(list(enumerate(keys))) if k not in got}.values())
        if todo:
            todo.sort()
            fresh = self._model.predict([windows[i] for i in todo], progress=progress)
            for i, p in zip(todo, fresh):
                got[keys[i]] = p
                memo.put(keys[i], p)
        return [got[k] for k in keys]

    # -- selection --------------------------------------------------------------------

    def _unit_probs(self, d: _DocTokens) -> np.ndarray:
        assert d.probs is not None
        p = d.probs.astype(np.float64)
        if self.options.keep_digits:
            p = np.where(d.digit_tok, 1.0, p)
        if d.unit_starts.size == 0:
            return np.zeros(0)
        valid = d.unit_of_tok >= 0
        pv = p[valid]
        first = np.concatenate(([0], np.cumsum(d.unit_ntok)[:-1]))
        if self.options.token_to_word == "first":
            return pv[first]
        return np.add.reduceat(pv, first) / d.unit_ntok

    def _plan(self, dts: list[_DocTokens]) -> Plan:
        o = self.options
        cat = np.concatenate
        n_spans = np.array([int(d.span.max()) + 1 if d.span.size else 0 for d in dts])
        span_off = np.concatenate(([0], np.cumsum(n_spans)[:-1]))
        return Plan(
            texts=[d.text for d in dts],
            separator=document_separator(o.separator, [d.text for d in dts]),
            doc=cat([np.full(d.unit_starts.size, i, dtype=np.int64) for i, d in enumerate(dts)]),
            starts=cat([d.unit_starts for d in dts]),
            ends=cat([d.unit_ends for d in dts]),
            probs=cat([self._unit_probs(d) for d in dts]),
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

    def _select(
        self,
        docs: list[Any],
        dts: list[_DocTokens],
        n_orig: int,
        b: Budget,
        target: int,
        joined: str,
        g: Guidance,
        token_starts: np.ndarray | None = None,
    ) -> CompressionResult:
        plan = self._plan(dts)
        raw = plan.probs
        rule = self._shape(plan, target, joined, token_starts)
        if g.bias is not None and plan.n:
            bias = np.zeros(plan.n)
            for i, d in enumerate(dts):
                sel = plan.doc == i
                if sel.any():
                    bias[sel] = g.bias(i, d.text, plan.starts[sel], plan.ends[sel])
            plan.probs = plan.probs + bias
        if g.exclude is not None and plan.n:
            for i, d in enumerate(dts):
                spans = g.exclude(i, d.text)
                if spans:
                    sel = np.flatnonzero(plan.doc == i)
                    plan.excluded[sel] |= (
                        overlap_mask(plan.starts[sel], plan.ends[sel], spans) & ~plan.protected[sel]
                    )
        if self.options.mode == "global":
            sel = select_global(
                plan,
                target,
                self._reader,
                joined,
                token_starts,
                on_overflow=self.options.on_overflow,
            )
            rendered, n_out = sel.rendered, sel.count
            if sel.notes:
                g = dataclasses.replace(g, notes=(*g.notes, *sel.notes))
        else:
            # the reference turns a ratio straight into its rate; a token target into target/n
            rate = b.ratio if b.ratio is not None else target / n_orig
            rendered = self._per_chunk(plan, dts, rate)
            n_out = self._reader.count(rendered.text)
        plan.probs = raw
        if rule is not None:
            cost = unit_costs(plan, self._reader, joined, token_starts)
            g = dataclasses.replace(
                g,
                notes=(
                    *g.notes,
                    *spent_notes(rule, rendered.kept, cost, target, self.options.rule_shares),
                ),
            )
        return self._result(docs, plan, rendered, n_orig, n_out, b, target, g, rule)

    def _shape(
        self, plan: Plan, target: int, joined: str, token_starts: np.ndarray | None
    ) -> np.ndarray | None:
        """Selection scores with the rules' capped bonuses (ctxcomp.rules) set on
        ``plan.probs``; each unit's rule code, or None when no rule is on."""
        o = self.options
        if plan.n < 2 or not (o.neighbor_weight or o.repeat_cover or o.label_cover):
            return None
        raw = plan.probs
        bonuses: dict[int, np.ndarray] = {}
        if o.neighbor_weight:
            bonuses[RULE_NEIGHBOR] = neighbor_bonus(raw, plan.forced, plan.doc, o.neighbor_weight)
        lab = _label_lines(plan, o.label_scope) if o.label_cover else None
        if o.repeat_cover:
            rep = _first_of_repeats(plan) * content_words(
                plan.texts, plan.doc, plan.starts, plan.ends
            )
            if lab is not None:  # label lines have their own order: no word cover inside
                rep[lab > 0] = 0.0
            bonuses[RULE_REPEAT] = o.repeat_cover * rep
        if lab is not None:
            bonuses[RULE_LABEL] = o.label_cover * lab
        cost = unit_costs(plan, self._reader, joined, token_starts)
        plan.probs, rule = shape(raw, bonuses, cost, target, o.rule_shares)
        return rule

    def _per_chunk(self, plan: Plan, dts: list[_DocTokens], rate: float) -> Rendered:
        chunk_of_unit = []
        newline_counts = []
        base = 0
        for d in dts:
            nchunk = d.chunk_bounds.size - 1
            tok_chunk = np.searchsorted(d.chunk_bounds, d.unit_first_tok, side="right") - 1
            chunk_of_unit.append(tok_chunk + base)
            newline_counts.append(
                d.newlines_per_chunk
                if "\n" in self.options.force_tokens
                else np.zeros(nchunk, np.int64)
            )
            base += nchunk
        units_text = [
            plan.texts[int(di)][a:b] for di, a, b in zip(plan.doc, plan.starts, plan.ends)
        ]
        # LLMLingua-2 weighs each word by the reader tokens of the word as the encoder sees
        # it: its normalizer applied (lowercased, accents stripped for uncased BERT; NFKC
        # for sentencepiece models), without whitespace. Identity for plain cased words.
        norm = getattr(self._tok, "normalizer", None)
        if norm is not None:
            units_text = ["".join(norm.normalize_str(t).split()) for t in units_text]
        enc = getattr(self._reader, "encode_batch", None)
        ids = enc(units_text) if enc else [self._reader.encode(t) for t in units_text]
        weights = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        return select_per_chunk(
            plan,
            np.concatenate(chunk_of_unit) if chunk_of_unit else np.zeros(0, np.int64),
            max(0.0, 1.0 - rate),
            weights,
            np.concatenate(newline_counts) if newline_counts else np.zeros(0, np.int64),
        )

    def _result(
        self,
        docs: list[Any],
        plan: Plan,
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
            per_doc_in = count_many(self._reader, [d.text for d in docs])
            per_doc_out = count_many(self._reader, rendered.pieces)
        scores = []
        for i in range(len(docs)):
            sel = plan.doc == i
            scores.append(
                UnitScores(
                    starts=plan.starts[sel],
                    ends=plan.ends[sel],
                    probs=plan.probs[sel].astype(np.float32),
                    kept=rendered.kept[sel],
                    forced=plan.forced[sel],
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
            reader=self._reader.name,
            compressor=self.name,
            config_hash=self.config_hash,
            mode=self.options.mode,
            question_aware=g.question_aware,
            notes=notes,
            scores=tuple(scores),
            separator=plan.separator,
        )

    def _unchanged(
        self,
        docs: list[Any],
        joined: str,
        n_orig: int,
        b: Budget,
        target: int,
        g: Guidance,
    ) -> CompressionResult:
        from ..result import KeptSpan

        counts = [n_orig] if len(docs) == 1 else count_many(self._reader, [d.text for d in docs])
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
            reader=self._reader.name,
            compressor=self.name,
            config_hash=self.config_hash,
            mode=self.options.mode,
            question_aware=g.question_aware,
            notes=(*g.notes, "budget at or above the input size: returned unchanged"),
            separator=document_separator(self.options.separator, [d.text for d in docs]),
        )

    # -- segment cache (ctxcomp.cache) ------------------------------------------------

    def _cache_init(self, cache: Any, namespace: str) -> tuple[Any, str]:
        """``cache``: None (off), True (default SQLite file), a path, a Store or a SegmentCache."""
        if cache is None or cache is False:
            return None, namespace
        from ..cache import as_cache
        from ..cache.keys import check_namespace

        return as_cache(cache), check_namespace(namespace)

    def _score_config(self) -> dict[str, Any]:
        """Everything a window's keep probabilities depend on (not the budget or options)."""
        m = self._model
        return {
            "model": m.fingerprint,
            "backend": m.backend,
            "device": str(getattr(m, "device", "cpu")).split(":")[0],
            "keep_label": self.keep_label,
            "prefix": list(getattr(m, "prefix", [])),
            "suffix": list(getattr(m, "suffix", [])),
        }

    def _cache_predict(
        self,
        docs: list[_DocTokens],
        owner: list[tuple[int, int, int]],
        windows: list[np.ndarray],
        progress: ProgressCallback | None,
    ) -> list[np.ndarray]:
        from ..cache.keys import config_hash
        from ..cache.tc import score_windows

        def text_of(i: int) -> str:
            di, a, b = owner[i]
            d = docs[di]
            return d.text[int(d.tok_starts[a]) : int(d.tok_ends[b - 1])] if b > a else ""

        return score_windows(
            self.cache,
            self.namespace,
            config_hash(self._score_config()),
            windows,
            self._model.predict,
            texts=text_of,
            progress=progress,
        )


class _AnalysisMemo:
    """LRU of document analyses keyed by the exact text, holding at most ``max_tokens``
    encoder tokens in all (~70 bytes each)."""

    def __init__(self, max_tokens: int = 1_000_000) -> None:
        self.max_tokens = int(max_tokens)
        self._d: OrderedDict[str, _DocTokens] = OrderedDict()
        self._tokens = 0
        self._lock = threading.Lock()

    def get(self, text: str) -> _DocTokens | None:
        with self._lock:
            d = self._d.get(text)
            if d is not None:
                self._d.move_to_end(text)
            return d

    def put(self, text: str, d: _DocTokens) -> None:
        n = int(d.ids.size)
        if n > self.max_tokens:
            return
        with self._lock:
            if text in self._d:
                return
            self._d[text] = d
            self._tokens += n
            while self._tokens > self.max_tokens:
                _, old = self._d.popitem(last=False)
                self._tokens -= int(old.ids.size)


class _ReaderStarts:
    """Reader token starts of several texts, computed on a background thread when they are
    long enough for the overlap with the encoder's tokenisation to pay for the thread
    (from ~1k tokens: starting a thread costs ~0.1 ms, counting 1k tokens ~0.3 ms)."""

    BACKGROUND_CHARS = 12_000

    def __init__(self, reader: ReaderTokenizer, texts: list[str]) -> None:
        self._reader = reader
        self._texts = texts
        self._out: dict[int, np.ndarray] = {}
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.background = sum(map(len, texts)) >= self.BACKGROUND_CHARS
        if self.background:
            self._thread = threading.Thread(
                target=self._run, name="ctxcomp-reader-count", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            for i, t in enumerate(self._texts):
                self._out[i] = self._reader.token_starts(t)
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc

    def __getitem__(self, i: int) -> np.ndarray:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        if i not in self._out:
            self._out[i] = self._reader.token_starts(self._texts[i])
        return self._out[i]

    def pop(self, i: int) -> np.ndarray:
        out = self[i]
        del self._out[i]
        return out


_WORDLIKE = re.compile(r"\w+")


def _first_of_repeats(plan: Plan) -> np.ndarray:
    """1.0 at the best-scored selectable occurrence of every word (case-folded; units that
    are letters/digits only) occurring at least twice among the plan's selectable units."""
    sel = np.flatnonzero(~plan.forced & ~plan.excluded)
    out = np.zeros(plan.n)
    if sel.size < 2:
        return out
    texts, starts, ends, doc = plan.texts, plan.starts[sel], plan.ends[sel], plan.doc[sel]
    words = [
        texts[d][a:b].casefold() for d, a, b in zip(doc.tolist(), starts.tolist(), ends.tolist())
    ]
    wordlike = np.fromiter(
        (_WORDLIKE.fullmatch(w) is not None for w in words), bool, count=len(words)
    )
    _, inv, counts = np.unique(
        np.array(words, dtype=object), return_inverse=True, return_counts=True
    )
    rep = wordlike & (counts[inv] >= 2)
    if not rep.any():
        return out
    cand = np.flatnonzero(rep)
    out[sel[cand[_best_of_groups(inv[cand], plan.probs[sel][cand])]]] = 1.0
    return out


def _best_of_groups(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the highest-scored member of each group (ties: the first)."""
    order = np.lexsort((np.arange(group.size), -score, group))
    head = np.ones(order.size, bool)
    head[1:] = group[order][1:] != group[order][:-1]
    return order[head]


LABEL_MAX_WORDS = 6
LABEL_MIN_FIELD_LINES = 3
_FIELD_LINE = re.compile(r"(?m)^[ \t]*([^\W\d_][\w ()/'-]{0,30}?)[ \t]*:[ \t]*(\S[^\n]*?)[ \t]*$")


def _label_lines(plan: Plan, scope: str) -> np.ndarray:
    """Label lines' selectable units (see ``TokenClassifierOptions.label_cover``): 2.0 on the
    best-scored occurrence of each distinct line; with scope "all" 1.0 on the others. Scores
    below are at most 2 (probability + repeat_cover), so with ``label_cover=1`` each label
    line is kept once before anything else, and its other occurrences compete with the
    recurring words."""
    out = np.zeros(plan.n)
    lines: list[tuple[int, int, int, str, str]] = []  # doc, start, end, field, value
    for di, text in enumerate(plan.texts):
        if ":" in text:
            for m in _FIELD_LINE.finditer(text):
                field = " ".join(m.group(1).casefold().split())
                lines.append((di, m.start(1), m.end(2), field, " ".join(m.group(2).split())))
    sizes: dict[str, list[int]] = {}
    for _, _, _, f, v in lines:
        sizes.setdefault(f, []).append(len(v.split()))
    # label fields: at least three lines, values mostly short ("Type", not "Question")
    fields = {
        f
        for f, n in sizes.items()
        if len(n) >= LABEL_MIN_FIELD_LINES and float(np.median(n)) <= LABEL_MAX_WORDS
    }
    lines = [x for x in lines if x[3] in fields and len(x[4].split()) <= LABEL_MAX_WORDS]
    if not lines:
        return out
    # units of each line: positions in the joined text, one sorted array for all documents
    offs = plan.doc_offsets()
    pos = offs[plan.doc] + plan.starts
    ldoc = np.fromiter((x[0] for x in lines), np.int64, count=len(lines))
    i0 = np.searchsorted(pos, offs[ldoc] + np.fromiter((x[1] for x in lines), np.int64), "left")
    i1 = np.searchsorted(pos, offs[ldoc] + np.fromiter((x[2] for x in lines), np.int64), "left")
    selectable = ~plan.forced & ~plan.excluded
    sel = selectable.astype(np.float64)
    n_sel = np.concatenate(([0.0], np.cumsum(sel)))
    p_sel = np.concatenate(([0.0], np.cumsum(plan.probs * sel)))
    cnt = n_sel[i1] - n_sel[i0]
    mean = np.where(cnt > 0, (p_sel[i1] - p_sel[i0]) / np.maximum(cnt, 1.0), -np.inf)
    _, key = np.unique(
        np.array([f"{x[3]}\0{x[4].casefold()}" for x in lines], dtype=object),
        return_inverse=True,
    )
    pick = _best_of_groups(key, mean)  # each distinct line's best-scored occurrence

    def covered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        c = np.zeros(plan.n + 1, np.int64)
        np.add.at(c, a, 1)
        np.add.at(c, b, -1)
        return (np.cumsum(c)[:-1] > 0) & selectable

    out[covered(i0[pick], i1[pick])] = 2.0
    if scope == "all":  # the other occurrences next: each label once before any twice
        out[covered(i0, i1) & (out == 0.0)] = 1.0
    return out


def _blank_markers(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each marker span replaced by a same-length run of "#" set off by spaces."""
    parts, pos = [], 0
    for a, b in spans:
        n = b - a
        parts += [text[pos:a], " " + "#" * (n - 2) + " " if n >= 3 else "#" * n]
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def _excluded_chars(text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray | None:
    """Character mask of ``spans`` over ``text`` (None when there are none)."""
    if not spans or not text:
        return None
    d = np.zeros(len(text) + 1, np.int64)
    for a, b in spans:
        d[max(a, 0)] += 1
        d[min(b, len(text))] -= 1
    return np.cumsum(d)[: len(text)] > 0


def _empty_doc(text: str) -> _DocTokens:
    """A document the coarse stage removed: no tokens, no units, never sent to the model."""
    z = np.zeros(0, dtype=np.int64)
    zb = np.zeros(0, dtype=bool)
    return _DocTokens(
        text=text,
        ids=z,
        tok_starts=z,
        tok_ends=z,
        chunk_bounds=np.zeros(1, np.int64),
        unit_of_tok=z,
        unit_starts=z,
        unit_ends=z,
        unit_first_tok=z,
        unit_ntok=z,
        forced=zb,
        protected=zb,
        span=z,
        excluded=zb,
        force_code=z,
        gap=np.zeros(0, np.int8),
        nospace_first=zb,
        nospace_last=zb,
        digit_tok=zb,
        newlines_per_chunk=z,
    )


def _norm_overrides(kw: dict[str, Any]) -> dict[str, Any]:
    allowed = set(TokenClassifierOptions.__dataclass_fields__)
    bad = set(kw) - allowed
    if bad:
        raise InputError(f"unknown option(s) {sorted(bad)}; known: {sorted(allowed)}")
    out = dict(kw)
    for k in ("force_tokens", "chunk_end_tokens"):
        if k in out and out[k] is not None:
            if isinstance(out[k], str):
                raise InputError(f"{k} must be a sequence of strings, not one string")
            out[k] = tuple(out[k])
    return out


_CUT_RE = re.compile(r"(?<=\S) (?=\S)")


def _blocks(text: str, size: int) -> list[tuple[int, int]]:
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
                after = _CUT_RE.search(text, b)
                cut = after.start() if after else n
            b = cut
        out.append((a, b))
        a = b
    return out


def _chunk(T: int, end_tok: np.ndarray, window: int) -> np.ndarray:
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


def file_fingerprint(path: str) -> str:
    """Cheap, stable digest of a local checkpoint: configs in full, weights by size + ends."""
    h = hashlib.sha256()
    for root, _dirs, files in sorted(os.walk(path)):
        for name in sorted(files):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, path)
            if rel.startswith(".") or name.endswith((".md", ".lock")):
                continue
            size = os.path.getsize(p)
            h.update(f"{rel}:{size}\n".encode())
            with open(p, "rb") as f:
                if size <= 4 << 20:
                    h.update(f.read())
                else:
                    h.update(f.read(1 << 20))
                    f.seek(-(1 << 20), os.SEEK_END)
                    h.update(f.read())
    return h.hexdigest()[:16]


__all__ = [
    "DEFAULT_FORCE_TOKENS",
    "TokenClassifierCompressor",
    "TokenClassifierOptions",
    "file_fingerprint",
]
