"""Question-aware coarse-to-fine compression (issue 7 behaviours)."""

import json

import numpy as np
import pytest

import ctxcomp
from ctxcomp.coarse import CoarseToFineCompressor
from ctxcomp.config import PipelineConfig, build
from tests.support.invariants import check_result

NEEDLE = "The lighthouse keeper of Kelvaig, Margit Olafsdottir, painted the tower blue in 1962."
QUESTION = "Who painted the Kelvaig lighthouse tower blue?"


@pytest.fixture(scope="module")
def ranker(minilm_path):
    from ctxcomp.rankers import BiEncoderRanker

    return BiEncoderRanker(minilm_path, device="cpu")


@pytest.fixture(scope="module")
def c2f(minilm_compressor, ranker):
    return CoarseToFineCompressor(minilm_compressor, ranker)


@pytest.fixture(scope="module")
def reader():
    return ctxcomp.get_tokenizer("cl100k_base")


@pytest.fixture(scope="module")
def docs(essays):
    names = ["avg", "boss", "copy", "gap", "gba", "hubs"]
    return (
        [essays[n][:2500] for n in names[:3]]
        + [NEEDLE + " " + essays["island"][:600]]
        + [essays[n][:2500] for n in names[3:]]
    )


def test_no_question_falls_back_and_says_so(c2f, docs, reader):
    r = c2f.compress(docs, target_tokens=600)
    assert r.question_aware is False
    assert any("no question" in n for n in r.notes)
    assert r.compressed_tokens <= 600
    check_result(r, docs, reader)


def test_ranks_drops_and_reasons(c2f, docs, reader):
    r = c2f.compress(docs, target_tokens=500, question=QUESTION)
    check_result(r, docs, reader)
    assert r.question_aware is True
    assert r.compressed_tokens <= 500
    needle = r.documents[3]
    assert needle.rank == 0 and needle.relevance == max(d.relevance for d in r.documents)
    assert "Olafsdottir" in r.text or "painted" in r.text
    dropped = [d for d in r.documents if d.dropped]
    assert dropped, "with 7 documents and a 500-token budget, the coarse stage drops some"
    for d in dropped:
        assert d.reason and ("coarse cut" in d.reason or "budget" in d.reason)
        assert d.rank is not None and d.rank > 0
    ranks = sorted(d.rank for d in r.documents)
    assert ranks == list(range(len(docs)))


def test_relevance_order(minilm_compressor, ranker, docs, reader):
    comp = CoarseToFineCompressor(minilm_compressor, ranker, order="relevance", coarse_factor=4.0)
    r = comp.compress(docs, target_tokens=900, question=QUESTION)
    check_result(r, docs, reader)
    assert r.document_order[0] == 3  # the most relevant document comes first
    kept_in_order = [i for i in r.document_order if r.documents[i].text]
    assert [r.documents[i].rank for i in kept_in_order] == sorted(
        r.documents[i].rank for i in kept_in_order
    )
    for i, d in enumerate(r.documents):  # provenance stays in input indices
        assert d.index == i and all(s.document == i for s in d.kept_spans)


def test_duplicates_and_empty(c2f, docs, reader):
    inp = [docs[0], docs[3], "   ", docs[0]]
    r = c2f.compress(inp, target_tokens=300, question=QUESTION)
    assert r.documents[2].reason == "empty document" and r.documents[2].dropped
    assert r.documents[3].reason == "duplicate of document 0" and r.documents[3].dropped
    assert r.compressed_tokens <= 300


def test_question_longer_than_budget(c2f, docs):
    q = " ".join([QUESTION] * 20)
    r = c2f.compress(docs, target_tokens=60, question=q)
    assert r.compressed_tokens <= 60
    assert any("question" in n and "budget" in n for n in r.notes)


def test_sentence_level_inside_one_long_document(c2f, essays, reader):
    text = essays["worked"][:20000] + "\n\n" + NEEDLE + "\n\n" + essays["worked"][20000:40000]
    r = c2f.compress(text, target_tokens=400, question=QUESTION)
    check_result(r, [text], reader)
    d = r.documents[0]
    assert d.reason and "sentences below the question-relevance cut" in d.reason
    sc = r.scores[0]
    a = text.index(NEEDLE)
    in_needle = (sc.starts >= a) & (sc.ends <= a + len(NEEDLE))
    free = ~sc.forced
    # the needle sentence keeps a larger share of its words than the document does overall
    assert sc.kept[in_needle & free].mean() > sc.kept[free].mean()


def test_pipeline_config(tmp_path, minilm_classifier_dir):
    cfg = {
        "model": str(minilm_classifier_dir),
        "device": "cpu",
        "order": "relevance",
        "coarse_factor": 3.0,
    }
    f = tmp_path / "ctxcomp.json"
    f.write_text(json.dumps(cfg), encoding="utf-8")
    comp = build(PipelineConfig.from_file(f))
    assert isinstance(comp, CoarseToFineCompressor) and comp.order == "relevance"
    toml = tmp_path / "ctxcomp.toml"
    toml.write_text(
        f'[ctxcomp]\nmodel = "{minilm_classifier_dir}"\ndevice = "cpu"\ncoarse = false\n',
        encoding="utf-8",
    )
    fine = build(PipelineConfig.from_file(toml))
    assert isinstance(fine, ctxcomp.TokenClassifierCompressor)
    with pytest.raises(ctxcomp.InputError, match="unknown pipeline config key"):
        PipelineConfig.from_mapping({"modle": "x"})
    with pytest.raises(ctxcomp.InputError, match="ranker must be one of"):
        PipelineConfig(ranker="bm25")


def test_bias_is_deterministic(c2f, docs):
    a = c2f.compress(docs, target_tokens=400, question=QUESTION)
    b = c2f.compress(docs, target_tokens=400, question=QUESTION)
    assert a.text == b.text and a.config_hash == b.config_hash
    assert np.array_equal(a.scores[3].kept, b.scores[3].kept)


def test_protected_spans_survive_sentence_exclusion(c2f, essays):
    code = "```text\nLower car park: 58.4127 N, 6.2291 W. Gate code 1.2.3.\n```"
    text = (
        essays["worked"][:15000]
        + "\n\n"
        + code
        + "\n\n"
        + NEEDLE
        + "\n\n"
        + essays["worked"][15000:30000]
    )
    r = c2f.compress(text, target_tokens=300, question=QUESTION)
    assert code in r.text  # the sentence splitter cuts inside it; protection keeps it whole
