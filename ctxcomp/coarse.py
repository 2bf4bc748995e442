"""Question-aware coarse-to-fine compression for RAG.

Coarse stage (LongLLMLingua's idea, under ctxcomp's single exact budget):
1. rank documents by relevance to the question;
2. keep documents in rank order until they hold ``coarse_factor`` x the target tokens
   (the rest are dropped before the model runs, each with its rank and score);
3. inside what is kept, if it still exceeds that, keep the most relevant sentences;
4. the fine stage (the token classifier) then compresses under the ONE global budget, with
   unit scores raised by document rank and sentence relevance — better-ranked documents
   are compressed more gently (dynamic ratios without per-document budgets).
Kept documents come out in original order or in relevance order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .budget import Budget
from .compressors.base import Compressor, Guidance, ProgressCallback
from .core.request import Request
from .core.stage import FineStage
from .errors import InputError
from .rankers import LazyRanker, Ranker, sentence_spans
from .relevance import RelevanceOptions, combine, kind_mask, wanted_kinds
from .result import CompressionResult, Document, KeptSpan
from .reuse import DEFAULT_VECTOR_BYTES, ArrayLRU, embed_reusing
from .tokens import count_many

ORDERS = ("original", "relevance")
# chosen on the development set's tune split (docs/evals.md, "Development set")
DEFAULT_RELEVANCE = RelevanceOptions(lexical=0.6, neighbor=0.3, document=0.3)


class CoarseToFineCompressor(Compressor):
    """A coarse, question-aware stage in front of a token-classification compressor."""

    name = "coarse-to-fine"

    def __init__(
        self,
        fine: FineStage,
        ranker: Ranker | None = None,
        *,
        order: str = "original",
        coarse_factor: float = 1.2,
        sentence_level: bool = True,
        doc_weight: float = 0.3,
        sentence_weight: float = 2.0,
        relevance: RelevanceOptions | None = DEFAULT_RELEVANCE,
        kind_bonus: float = 0.5,
        vector_memo_bytes: int = DEFAULT_VECTOR_BYTES,
    ) -> None:
        """``vector_memo_bytes`` bounds the in-process memo of sentence embeddings (reused by
        every later question over the same text; 0: off). With the fine stage's segment
        cache they are also stored there (see :mod:`ctxcomp.reuse`)."""
        super().__init__(reader=fine.reader)
        if order not in ORDERS:
            raise InputError(f"order must be one of {ORDERS}, got {order!r}")
        if not coarse_factor >= 1.0:
            raise InputError(f"coarse_factor must be >= 1, got {coarse_factor!r}")
        self.fine = fine
        # the default: the bi-encoder, loaded when a question first needs it
        self._ranker: Ranker = LazyRanker() if ranker is None else ranker
        self.order = order
        self.coarse_factor = float(coarse_factor)
        self.sentence_level = sentence_level
        self.doc_weight = float(doc_weight)
        self.sentence_weight = float(sentence_weight)
        self._vectors = ArrayLRU(vector_memo_bytes)
        # sentence relevance = bi-encoder cosine + these signals (ctxcomp.relevance)
        self.relevance = relevance or RelevanceOptions()
        # added to the units of the kind the question asks for (numbers, names)
        self.kind_bonus = float(kind_bonus)

    @property
    def ranker(self) -> Ranker:
        return self._ranker

    def config(self) -> dict[str, Any]:
        return {
            "fine": self.fine.config_hash,
            "ranker": self.ranker.fingerprint(),
            "order": self.order,
            "coarse_factor": self.coarse_factor,
            "sentence_level": self.sentence_level,
            "doc_weight": self.doc_weight,
            "sentence_weight": self.sentence_weight,
            **(
                {"relevance": self.relevance.fingerprint()}
                if self.relevance != RelevanceOptions()
                else {}
            ),
            **({"kind_bonus": self.kind_bonus} if self.kind_bonus else {}),
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
        if question is None or not question.strip():
            g = Guidance(
                notes=("no question given: compressed question-agnostically (token level only)",)
            )
            return self._relabel(
                self.fine.run_guided(
                    [Request(tuple(d), b) for d in requests], [g] * len(requests), progress=progress
                )
            )
        reader = self.fine.reader_tokenizer
        q_tokens = reader.count(question)
        out: list[CompressionResult] = []
        plans = []
        for docs in requests:
            perm, guidance = self.coarse_plan(docs, question, q_tokens, b, reader)
            plans.append((perm, guidance))
        permuted = [[docs[j] for j in perm] for docs, (perm, _) in zip(requests, plans)]
        results = self.fine.run_guided(
            [Request(tuple(p), b) for p in permuted], [g for _, g in plans], progress=progress
        )
        for (perm, _), r in zip(plans, results):
            out.append(self._unpermute(r, perm))
        return self._relabel(out)

    # -- coarse stage -----------------------------------------------------------------

    def coarse_plan(
        self, docs: list[Document], question: str, q_tokens: int, b: Budget, reader: Any
    ) -> tuple[list[int], Guidance]:
        """The coarse stage alone for one request: the order the fine stage sees the
        documents in (a permutation) and the guidance it gets (``q_tokens``: the question's
        length in ``reader`` tokens)."""
        n = len(docs)
        texts = [d.text for d in docs]
        counts = count_many(reader, texts)
        total = reader.count(self.fine.separator.join(texts))
        target = b.resolve(total)
        notes: list[str] = []
        if q_tokens >= target:
            notes.append(
                f"the question ({q_tokens} tokens) is as long as the context budget ({target}); "
                "the budget counts the context only, so the question is not cut"
            )
        drop: dict[int, str] = {}
        seen: dict[str, int] = {}
        live: list[int] = []
        for i, t in enumerate(texts):
            key = " ".join(t.split())
            if not key:
                drop[i] = "empty document"
            elif key in seen:
                drop[i] = f"duplicate of document {seen[key]}"
            else:
                seen[key] = i
                live.append(i)
        scores = np.full(n, -np.inf)
        sent_cache: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
        if live:
            if hasattr(self.ranker, "embed"):
                # bi-encoder: embed every sentence once; a document scores as its best
                # sentence, and the sentence level below reuses the same similarities
                q = self._embed([question])[0]
                sent_cache = _sentence_scores(texts, live, lambda xs: self._embed(xs) @ q)
                sent_cache = self.sentence_relevance(question, texts, sent_cache)
                for i in live:
                    scores[i] = float(sent_cache[i][1].max())
            else:
                scores[live] = self.ranker.score(question, [texts[i] for i in live])
        ranked = sorted(live, key=lambda i: (-scores[i], i))
        rank = {doc: r for r, doc in enumerate(ranked)}
        info = {i: (float(scores[i]), rank[i]) for i in live}
        # 2. documents in rank order until they hold coarse_factor x the target
        cap = self.coarse_factor * target
        kept: list[int] = []
        acc = 0
        for i in ranked:
            if kept and acc + counts[i] > cap:
                drop[i] = (
                    f"rank {rank[i] + 1} of {len(ranked)} (relevance {scores[i]:.3f}) fell below the coarse cut"
                )
                continue
            kept.append(i)
            acc += counts[i]
        if target >= total:
            drop = {
                i: r for i, r in drop.items() if r == "empty document"
            }  # unchanged: nothing dropped
        # 3. sentence level inside what is kept, when it is still far over the cap
        exclude_spans: dict[int, list[tuple[int, int]]] = {}
        sent_rel: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
        shortened: dict[int, str] = {}
        if self.sentence_level and acc > cap and kept:
            missing = [i for i in kept if i not in sent_cache]
            if missing:  # rankers without sentence embeddings: one call for all sentences
                sent_cache.update(
                    self.sentence_relevance(
                        question,
                        texts,
                        _sentence_scores(
                            texts, missing, lambda xs: self.ranker.score(question, xs)
                        ),
                    )
                )
            spans_all: list[tuple[int, int, int]] = []
            sim_parts: list[np.ndarray] = []
            for i in kept:
                sp, sm = sent_cache[i]
                spans_all.extend((i, a, e) for a, e in sp)
                sim_parts.append(sm)
            sims = np.concatenate(sim_parts)
            costs = count_many(reader, [texts[i][a:e] for i, a, e in spans_all])
            order = np.lexsort((np.arange(len(spans_all)), -sims))
            keep_mask = np.zeros(len(spans_all), dtype=bool)
            s_acc = 0
            for k in order:
                if s_acc + costs[k] > cap and keep_mask.any():
                    continue
                keep_mask[k] = True
                s_acc += costs[k]
            for k, (i, a, e) in enumerate(spans_all):
                if not keep_mask[k]:
                    exclude_spans.setdefault(i, []).append((a, e))
            k0 = 0
            for i, sm in zip(kept, sim_parts):
                idx = np.arange(k0, k0 + sm.size)
                k0 += sm.size
                sent_rel[i] = ([(spans_all[k][1], spans_all[k][2]) for k in idx], sims[idx])
                n_drop = int((~keep_mask[idx]).sum())
                if n_drop:
                    shortened[i] = (
                        f"{n_drop} of {idx.size} sentences below the question-relevance cut"
                    )
        for i in kept:  # sentence relevance also steers the fine stage when it is known
            if i not in sent_rel and i in sent_cache:
                sent_rel[i] = sent_cache[i]
        # 4. bias for the fine stage: document rank and sentence relevance
        perm = list(range(n))
        if self.order == "relevance":
            perm = ranked + [i for i in range(n) if i not in rank]
        pos = {orig: p for p, orig in enumerate(perm)}
        nk = max(len(kept), 1)
        doc_bonus = {
            i: self.doc_weight * (1.0 - r / max(nk - 1, 1))
            for r, i in enumerate(sorted(kept, key=lambda i: rank[i]))
        }
        if nk == 1:
            doc_bonus = {i: self.doc_weight for i in kept}
        inv = {p: orig for orig, p in pos.items()}
        sw = self.sentence_weight
        # sentence relevance scaled over the whole request (a distractor's best sentence
        # is not a relevant document's best)
        rel_all = [sm for i, (_, sm) in sent_rel.items() if i in kept and sm.size]
        lo = float(min(x.min() for x in rel_all)) if rel_all else 0.0
        hi = float(max(x.max() for x in rel_all)) if rel_all else 0.0
        kinds = wanted_kinds(question) if self.kind_bonus else frozenset()

        def bias(di: int, text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
            orig = inv[di]
            out = np.full(starts.size, doc_bonus.get(orig, 0.0))
            if kinds:
                out += self.kind_bonus * kind_mask(text, starts, ends, kinds)
            if orig in sent_rel and sw:
                spans, sims = sent_rel[orig]
                if spans:
                    rel = (sims - lo) / (hi - lo) if hi > lo else np.ones_like(sims)
                    sa = np.asarray([a for a, _ in spans], dtype=np.int64)
                    j = np.clip(np.searchsorted(sa, starts, side="right") - 1, 0, None)
                    out += sw * rel[j]
            return out

        def exclude(di: int, text: str) -> list[tuple[int, int]]:
            return exclude_spans.get(inv[di], [])

        g = Guidance(
            notes=tuple(notes),
            drop={pos[i]: r for i, r in drop.items()},
            bias=bias,
            exclude=exclude,
            info={pos[i]: v for i, v in info.items()},
            shortened={pos[i]: r for i, r in shortened.items()},
            question_aware=True,
        )
        return perm, g

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings through the in-process memo and the fine stage's segment cache."""
        embed = self.ranker.embed  # type: ignore[attr-defined]
        return embed_reusing(
            texts,
            embed,
            self.ranker.fingerprint(),
            self._vectors,
            getattr(self.fine, "cache", None),
            getattr(self.fine, "namespace", "default"),
        )

    def sentence_relevance(
        self,
        question: str,
        texts: list[str],
        sc: dict[int, tuple[list[tuple[int, int]], np.ndarray]],
    ) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
        """Sentence scores with the relevance options' signals added (ctxcomp.relevance):
        ``{document index: (sentence spans, scores)}`` in, the same shape out. The coarse
        stage's public hook for rescoring sentences: a subclass may override it (e.g. to
        rerank with a question-conditioned scorer, as the dev-set runner does)."""
        if self.relevance == RelevanceOptions() or not sc:
            return sc
        docs = list(sc)
        sents = [texts[i][a:e] for i in docs for a, e in sc[i][0]]
        doc_of = np.concatenate([np.full(len(sc[i][0]), k, np.int64) for k, i in enumerate(docs)])
        dense = np.concatenate([sc[i][1] for i in docs])
        s = combine(question, sents, dense, doc_of, self.relevance)
        out, k = {}, 0
        for i in docs:
            m = len(sc[i][0])
            out[i] = (sc[i][0], s[k : k + m])
            k += m
        return out

    # -- result mapping ---------------------------------------------------------------

    def _unpermute(self, r: CompressionResult, perm: list[int]) -> CompressionResult:
        """Documents back in input order with input indices; ``text`` keeps the output order."""
        if perm == list(range(len(perm))):
            return r
        docs: list[Any] = [None] * len(perm)
        for p, d in enumerate(r.documents):
            orig = perm[p]
            docs[orig] = dataclasses.replace(
                d,
                index=orig,
                kept_spans=tuple(KeptSpan(orig, s.start, s.end) for s in d.kept_spans),
            )
        scores = None
        if r.scores is not None:
            sc: list[Any] = [None] * len(perm)
            for p, s in enumerate(r.scores):
                sc[perm[p]] = s
            scores = tuple(sc)
        return dataclasses.replace(
            r, documents=tuple(docs), scores=scores, document_order=tuple(perm)
        )

    def _relabel(self, results: list[CompressionResult]) -> list[CompressionResult]:
        return [
            dataclasses.replace(r, compressor=self.name, config_hash=self.config_hash)
            for r in results
        ]


def _sentence_scores(
    texts: list[str], docs: list[int], score: Any
) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
    """Sentence spans of each document in ``docs`` (the whole text when it has none) and
    their relevance, from one ``score(list of sentence texts)`` call over all of them."""
    spans = {i: sentence_spans(texts[i]) or [(0, len(texts[i]))] for i in docs}
    sims = np.asarray(score([texts[i][a:e] for i in docs for a, e in spans[i]]), np.float64)
    out: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
    k = 0
    for i in docs:
        m = len(spans[i])
        out[i] = (spans[i], sims[k : k + m])
        k += m
    return out
