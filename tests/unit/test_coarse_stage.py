"""The coarse stage over a stub fine stage, through the public stage protocol only
(ctxcomp.core.stage): no model, no torch. The fine stage keeps every document the guidance
does not drop, whole; the ranker is a bag-of-words embedder."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from ctxcomp import Budget, CoarseToFineCompressor, CompressionResult, Document
from ctxcomp.core import FineStage, Guidance, Request
from ctxcomp.result import DocumentResult, KeptSpan
from ctxcomp.tokens import get_tokenizer

READER = "o200k_base"


class WholeDocuments:
    """A fine stage that keeps the documents the guidance leaves, whole, and records what
    it was asked."""

    name = "whole-documents"
    reader = READER
    separator = "\n\n"
    config_hash = "stub0000stub0000"

    def __init__(self) -> None:
        self.calls: list[tuple[list[Request], list[Guidance]]] = []

    @property
    def reader_tokenizer(self):
        return get_tokenizer(READER)

    def run_guided(
        self,
        requests: Sequence[Request],
        guidance: Sequence[Guidance],
        *,
        progress=None,
    ) -> list[CompressionResult]:
        self.calls.append((list(requests), list(guidance)))
        tok = self.reader_tokenizer
        out = []
        for r, g in zip(requests, guidance):
            docs = [d for d in r.documents]
            kept = [i for i in range(len(docs)) if i not in g.drop]
            text = self.separator.join(docs[i].text for i in kept)
            n_in = tok.count(self.separator.join(d.text for d in docs))
            out.append(
                CompressionResult(
                    text=text,
                    documents=tuple(
                        DocumentResult(
                            index=i,
                            text=d.text if i in kept else "",
                            original_tokens=tok.count(d.text),
                            compressed_tokens=tok.count(d.text) if i in kept else 0,
                            kept_spans=(KeptSpan(i, 0, len(d.text)),) if i in kept else (),
                            **g.doc_info(i, dropped_by_budget=False),
                        )
                        for i, d in enumerate(docs)
                    ),
                    original_tokens=n_in,
                    compressed_tokens=tok.count(text),
                    budget=r.budget,
                    target_tokens=r.budget.resolve(n_in),
                    reader=READER,
                    compressor=self.name,
                    config_hash=self.config_hash,
                    question_aware=g.question_aware,
                    notes=g.notes,
                )
            )
        return out


class BagOfWords:
    """A bi-encoder stand-in: hashed word counts, unit norm."""

    name = "bi-encoder"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 256), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.strip(".,?!").encode()) % 256] += 1.0
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(n > 0, n, 1.0)

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        return self.embed(list(texts)) @ self.embed([question])[0]

    def fingerprint(self) -> str:
        return "bag-of-words-256"


DOCS = [
    "The harbour of the town holds fishing boats. Boats leave at dawn.",
    "Taxes on bread rose twice last year. The council met on Tuesday.",
    "Fishing boats of the town bring cod and herring. The boats are painted blue.",
    "A new library opened downtown. It lends books and music.",
]
Q = "Which fishing boats does the town have?"


def test_the_stub_is_a_fine_stage() -> None:
    assert isinstance(WholeDocuments(), FineStage)


def test_coarse_stage_steers_any_fine_stage() -> None:
    fine = WholeDocuments()
    c2f = CoarseToFineCompressor(fine, BagOfWords(), coarse_factor=1.0)
    total = get_tokenizer(READER).count("\n\n".join(DOCS))
    r = c2f.compress([Document(t) for t in DOCS], target_tokens=total // 2, question=Q)
    (requests, guidance), = fine.calls
    assert len(requests) == len(guidance) == 1 and guidance[0].question_aware
    # the fishing documents rank first and the best is kept; the coarse cut (what fits in
    # coarse_factor x the budget, by rank) is what the guidance drops, with the reason;
    # the document sharing no word with the question is cut
    ranks = {d.index: d.rank for d in r.documents}
    assert {ranks[0], ranks[2]} == {0, 1}
    best = min(r.documents, key=lambda d: d.rank)
    assert best.kept_spans and not best.reason
    drop = guidance[0].drop
    assert 3 in drop and set(drop) == {d.index for d in r.documents if d.dropped}
    for i in drop:
        assert "coarse cut" in (r.documents[i].reason or "")
    assert r.compressed_tokens <= total // 2
    # results name the pipeline, documents come back in input order with input indices
    assert r.compressor == c2f.name and r.config_hash == c2f.config_hash
    assert [d.index for d in r.documents] == list(range(len(DOCS)))
    for d in r.documents:
        for s in d.kept_spans:
            assert s.document == d.index and DOCS[d.index][s.start : s.end] == d.text


def test_without_a_question_the_fine_stage_alone_decides() -> None:
    fine = WholeDocuments()
    c2f = CoarseToFineCompressor(fine, BagOfWords())
    r = c2f.compress(DOCS, budget=Budget(ratio=0.5))
    (_, guidance), = fine.calls
    assert not guidance[0].drop and not guidance[0].question_aware
    assert r.text == "\n\n".join(DOCS)
    assert any("no question" in n for n in r.notes)


@pytest.mark.parametrize("order", ["original", "relevance"])
def test_order_is_a_permutation(order: str) -> None:
    fine = WholeDocuments()
    c2f = CoarseToFineCompressor(fine, BagOfWords(), order=order)
    r = c2f.compress(DOCS, ratio=0.9, question=Q)
    got = r.document_order if r.document_order is not None else tuple(range(len(DOCS)))
    assert sorted(got) == list(range(len(DOCS)))
