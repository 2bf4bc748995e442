"""Many questions over one document: sentence embeddings and window scores are computed
once and reused, in-process and through the segment cache, with results identical to a
fresh compressor's (issue 14, part 3)."""

from __future__ import annotations

import numpy as np
import pytest

import ctxcomp
from ctxcomp.coarse import CoarseToFineCompressor
from ctxcomp.reuse import SENTENCE_KIND, ArrayLRU, sentence_key
from tests.invariants import check_result

pytest.importorskip("sentence_transformers")

Q1 = "What does the author say about raising money from investors?"
Q2 = "Why do hackers like some programming languages?"


@pytest.fixture(scope="module")
def ranker(minilm_path):
    from ctxcomp.rankers import BiEncoderRanker

    return BiEncoderRanker(minilm_path, device="cpu")


class _Counting:
    """A ranker that records every text it embeds."""

    name = "bi-encoder"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded.extend(texts)
        return self.inner.embed(texts)

    def score(self, question, texts):
        return self.inner.score(question, texts)

    def fingerprint(self):
        return self.inner.fingerprint()


def _pipeline(tiny_bert, ranker, **fine_kw):
    """Coarse + fine over the tiny model, counting embedded texts and scored tokens."""
    model, tok = tiny_bert
    fine = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", **fine_kw)
    scored = []
    inner = fine._model.predict

    def predict(windows, progress=None):
        scored.append(sum(w.size for w in windows))
        return inner(windows, progress)

    fine._model.predict = predict
    return CoarseToFineCompressor(fine, _Counting(ranker)), scored


@pytest.fixture(scope="module")
def doc(essays):
    text = "\n\n".join(list(essays.values())[:2])
    return text[: text.rfind("\n", 0, 5000)]


def test_array_lru_is_bounded():
    lru = ArrayLRU(max_bytes=1000)
    for i in range(20):
        lru.put(f"k{i}", np.zeros(25, np.float32))  # 100 bytes + 2-3 for the key
    assert lru.nbytes <= 1000 and len(lru) == 9
    assert lru.get_many(["k0", "k19"]).keys() == {"k19"}
    lru.get_many(["k11"])  # now the most recent
    lru.put("new", np.zeros(25, np.float32))
    assert "k11" in lru.get_many(["k11"]) and "k12" not in lru.get_many(["k12"])
    ArrayLRU(0).put("x", np.zeros(1))


def test_embeddings_do_not_depend_on_companions(ranker, doc):
    from ctxcomp.rankers import sentence_spans

    sents = [doc[a:b] for a, b in sentence_spans(doc)][:60]
    assert len(sents) >= 40
    together = ranker.embed(sents)
    for i in (0, 7, 33, len(sents) - 1):
        np.testing.assert_array_equal(ranker.embed([sents[i]])[0], together[i])
    np.testing.assert_array_equal(ranker.embed(sents[20:40]), together[20:40])
    assert ranker.embed([]).shape == (0, together.shape[1])


def test_second_question_reuses_the_document(tiny_bert, ranker, doc):
    reader = ctxcomp.get_tokenizer("cl100k_base")
    c2f, scored = _pipeline(tiny_bert, ranker)
    r1 = c2f.compress(doc, target_tokens=500, question=Q1)
    embedded_first, scored_first = len(c2f.ranker.embedded), sum(scored)
    assert embedded_first > 30 and scored_first > 800
    r2 = c2f.compress(doc, target_tokens=500, question=Q2)
    assert c2f.ranker.embedded[embedded_first:] == [Q2]  # the question alone
    assert sum(scored) == scored_first  # no window scored again
    fresh, _ = _pipeline(tiny_bert, ranker)
    assert r2.text == fresh.compress(doc, target_tokens=500, question=Q2).text
    check_result(r1, [doc], reader)
    check_result(r2, [doc], reader)
    # a request mixing the seen document with a new one equals a fresh pipeline's answer
    docs = [doc, "Lighthouses guide ships. The keeper painted the tower blue in 1962."]
    fresh, _ = _pipeline(tiny_bert, ranker)
    want = fresh.compress(docs, target_tokens=400, question=Q1).text
    assert c2f.compress(docs, target_tokens=400, question=Q1).text == want


def test_reuse_through_the_segment_cache(tiny_bert, ranker, doc):
    """A second pipeline (fresh in-process memos, as a new process) over the same store
    embeds only its question and runs no window; other namespaces see nothing."""
    from ctxcomp.cache import MemoryStore, SegmentCache

    cache = SegmentCache(MemoryStore())
    first, _ = _pipeline(tiny_bert, ranker, cache=cache, namespace="tenant-a")
    first.compress(doc, target_tokens=500, question=Q1)
    second, scored = _pipeline(tiny_bert, ranker, cache=cache, namespace="tenant-a")
    r = second.compress(doc, target_tokens=500, question=Q2)
    assert second.ranker.embedded == [Q2] and sum(scored) == 0
    fresh, _ = _pipeline(tiny_bert, ranker)
    assert r.text == fresh.compress(doc, target_tokens=500, question=Q2).text
    other, scored = _pipeline(tiny_bert, ranker, cache=cache, namespace="tenant-b")
    other.compress(doc, target_tokens=500, question=Q2)
    assert len(other.ranker.embedded) > 30 and sum(scored) > 0


def test_wrong_or_broken_cached_embeddings_are_not_served(tiny_bert, ranker):
    from ctxcomp.cache import MemoryStore, SegmentCache
    from ctxcomp.cache.artifact import Artifact

    cache = SegmentCache(MemoryStore())
    model = ranker.fingerprint()
    texts = ["The keeper painted the tower blue.", "Ships pass at night."]
    bad = {
        # an entry stored for another text under this text's key
        sentence_key(model, texts[0]): Artifact(
            SENTENCE_KIND,
            {"v": np.ones(384, np.float32), "t": np.frombuffer(b"another text", np.uint8)},
        ),
        sentence_key(model, texts[1]): Artifact(
            SENTENCE_KIND,
            {
                "v": np.full(384, np.nan, np.float32),
                "t": np.frombuffer(texts[1].encode(), np.uint8),
            },
        ),
    }
    cache.put("default", SENTENCE_KIND, bad)
    c2f, _ = _pipeline(tiny_bert, ranker, cache=cache)
    c2f.compress(texts, target_tokens=5, question="Who painted the tower?")
    assert set(texts) <= set(c2f.ranker.embedded)  # both recomputed, neither served
