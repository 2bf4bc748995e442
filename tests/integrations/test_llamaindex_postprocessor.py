"""LlamaIndex postprocessor with real parts: VectorStoreIndex (in-memory) over MiniLM
embeddings (llama-index-embeddings-huggingface, local path), its retriever and query
engine with MockLLM; bad input. Invariants, not golden strings."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.postprocessor.ctxcomp")

from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.ctxcomp import CtxcompPostprocessor, DroppedNode

import ctxcomp

QUESTION = "How should a startup think about hiring its first employees?"
TEXT = "Paris is the capital of France. It has many museums and a long history of art."


def _count(text: str) -> int:
    return ctxcomp.get_tokenizer("cl100k_base").count(text)


def _check(out, raw, target, check_provenance):
    by_id = {n.node.node_id: n for n in raw}
    assert out
    assert len({n.node.node_id for n in out}) == len(out)
    for n in out:
        src = by_id[n.node.node_id]
        stats = n.node.metadata["ctxcomp"]
        assert n.score == src.score
        assert {k: v for k, v in n.node.metadata.items() if k != "ctxcomp"} == src.node.metadata
        assert n.node.ref_doc_id == src.node.ref_doc_id
        check_provenance(n.node.text, src.node.text, stats["kept_spans"])
        assert stats["compressed_tokens"] == _count(n.node.text)
        assert "ctxcomp" in n.node.excluded_llm_metadata_keys
        assert "ctxcomp" not in src.node.metadata, "input nodes are not modified"
        assert "kept_spans" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    assert _count("\n\n".join(n.node.text for n in out)) <= target
    positions = [raw.index(by_id[n.node.node_id]) for n in out]
    assert positions == sorted(positions), "input order kept"


def test_retriever_then_postprocessor(li_index, minilm_compressor, check_provenance):
    retriever = li_index.as_retriever(similarity_top_k=4)
    raw = retriever.retrieve(QUESTION)
    pp = CtxcompPostprocessor(compressor=minilm_compressor, target_tokens=120)
    out = pp.postprocess_nodes(raw, query_str=QUESTION)
    _check(out, raw, 120, check_provenance)
    out_async = asyncio.run(pp.apostprocess_nodes(raw, query_bundle=QueryBundle(QUESTION)))
    assert [(n.node.node_id, n.node.text) for n in out_async] == [
        (n.node.node_id, n.node.text) for n in out
    ]


def test_query_engine_with_mock_llm(li_index, minilm_compressor, mock_llm, check_provenance):
    pp = CtxcompPostprocessor(compressor=minilm_compressor, ratio=0.3)
    engine = li_index.as_query_engine(llm=mock_llm, similarity_top_k=4, node_postprocessors=[pp])
    raw = li_index.as_retriever(similarity_top_k=4).retrieve(QUESTION)
    response = engine.query(QUESTION)
    total = response.source_nodes[0].node.metadata["ctxcomp"]["call"]["original_tokens"]
    _check(response.source_nodes, raw, int(0.3 * total), check_provenance)
    prompt = str(response)  # MockLLM answers with the prompt it got
    for n in response.source_nodes:
        assert n.node.text in prompt
    assert "kept_spans" not in prompt and "config_hash" not in prompt
    response_async = asyncio.run(engine.aquery(QUESTION))
    assert [n.node.text for n in response_async.source_nodes] == [
        n.node.text for n in response.source_nodes
    ]


_PLAIN = [
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu",
    "red orange yellow green blue indigo violet crimson scarlet amber",
    "one two three four five six seven eight nine ten eleven twelve",
    "north south east west up down left right inside outside above below",
]


def _nodes(texts, **meta):
    return [
        NodeWithScore(
            node=TextNode(text=t, metadata={"i": i, **meta}, id_=f"n{i}"), score=1.0 - i / 10
        )
        for i, t in enumerate(texts)
    ]


def test_dropped_nodes_are_reported(tiny_bert_compressor):
    seen: list[list[DroppedNode]] = []
    pp = CtxcompPostprocessor(
        compressor=tiny_bert_compressor, target_tokens=6, on_dropped=seen.append
    )
    nodes = _nodes(_PLAIN)
    out = pp.postprocess_nodes(nodes, query_str="colours")
    (report,) = seen
    dropped = {x.index for x in report}
    kept = {n.node.metadata["ctxcomp"]["input_index"] for n in out}
    assert dropped and kept and dropped | kept == set(range(4)) and not dropped & kept
    assert all(x.reason == "budget" and x.node is nodes[x.index] for x in report)
    for n in out:
        assert n.node.metadata["i"] == int(n.node.node_id[1:])
        assert n.node.metadata["ctxcomp"]["call"]["dropped"] == sorted(dropped)


def test_bad_input(tiny_bert_compressor, tiny_bert, long_text, check_provenance):
    seen: list = []
    pp = CtxcompPostprocessor(
        compressor=tiny_bert_compressor, target_tokens=10, on_dropped=seen.append
    )
    # empty and whitespace-only nodes: not returned, reported with reason "empty"
    nodes = _nodes(["", TEXT, "  \n "])
    out = pp.postprocess_nodes(nodes, query_str="capital")
    assert [n.node.node_id for n in out] == ["n1"]
    assert [(x.index, x.reason) for x in seen[-1]] == [(0, "empty"), (2, "empty")]
    assert pp.postprocess_nodes([], query_str="q") == []
    assert pp.postprocess_nodes(_nodes([""])) == []
    # non-string text: an InputError naming the node
    bad = NodeWithScore(node=TextNode.model_construct(text=123, metadata={}, id_="bad"), score=None)
    with pytest.raises(ctxcomp.InputError, match=r"node 1 \(bad\) has non-string text"):
        pp.postprocess_nodes([nodes[1], bad])
    with pytest.raises(ctxcomp.InputError, match="must be a NodeWithScore"):
        pp.postprocess_nodes([TextNode(text=TEXT)])  # type: ignore[list-item]
    # missing metadata and no query: fine
    (n,) = pp.postprocess_nodes([NodeWithScore(node=TextNode(text=TEXT))])
    assert set(n.node.metadata) == {"ctxcomp"} and n.score is None
    # a huge node next to small ones: the budget holds, provenance exact
    huge = NodeWithScore(node=TextNode(text=long_text[:40_000], id_="huge"), score=0.1)
    raw = [*_nodes([TEXT, TEXT]), huge]
    pp300 = CtxcompPostprocessor(compressor=tiny_bert_compressor, target_tokens=300)
    out = pp300.postprocess_nodes(raw, query_str="what is this about?")
    assert _count("\n\n".join(x.node.text for x in out)) <= 300
    by_id = {x.node.node_id: x for x in raw}
    for x in out:
        check_provenance(
            x.node.text, by_id[x.node.node_id].node.text, x.node.metadata["ctxcomp"]["kept_spans"]
        )
    # a budget smaller than the question is fine (the question is not in the budget) ...
    question = "What is the capital of France, and which museums should a visitor see first?"
    (n,) = CtxcompPostprocessor(compressor=tiny_bert_compressor, target_tokens=5).postprocess_nodes(
        _nodes([TEXT]), query_str=question
    )
    assert _count(n.node.text) <= 5
    # ... but with on_overflow="error" one below what must be kept is a BudgetError
    strict = ctxcomp.TokenClassifierCompressor(*tiny_bert, device="cpu", on_overflow="error")
    with pytest.raises(ctxcomp.BudgetError, match="smaller than what must be kept"):
        CtxcompPostprocessor(compressor=strict, target_tokens=1).postprocess_nodes(
            _nodes(["Is it Paris? Yes, it is Paris."]), query_str=question
        )


def test_construction(tiny_bert_compressor, monkeypatch):
    with pytest.raises(ctxcomp.InputError, match="not both"):
        CtxcompPostprocessor(compressor=tiny_bert_compressor, model="org/checkpoint")
    with pytest.raises(ctxcomp.BudgetError):
        CtxcompPostprocessor(compressor=tiny_bert_compressor, ratio=0.0)
    with pytest.raises(ctxcomp.InputError, match="counts its budget"):
        CtxcompPostprocessor(compressor=tiny_bert_compressor, reader="o200k_base")
    assert CtxcompPostprocessor(compressor=tiny_bert_compressor).budget == ctxcomp.Budget(ratio=0.5)
    calls = []

    def fake(prompt, *, budget=None, question=None, model=None, **kw):
        calls.append((model, question, budget, kw))
        return tiny_bert_compressor.compress(prompt, budget=budget, question=question)

    monkeypatch.setattr(ctxcomp, "compress", fake)
    pp = CtxcompPostprocessor(model="org/checkpoint", reader="o200k_base", target_tokens=50)
    out = pp.postprocess_nodes(_nodes([TEXT]), query_str="capital?")
    out_async = asyncio.run(pp.apostprocess_nodes(_nodes([TEXT]), query_str="capital?"))
    assert [n.node.text for n in out] == [n.node.text for n in out_async]
    assert calls == 2 * [
        ("org/checkpoint", "capital?", ctxcomp.Budget(target_tokens=50), {"reader": "o200k_base"})
    ]
    assert pp.class_name() == "CtxcompPostprocessor"
    d = pp.to_dict()
    assert d["target_tokens"] == 50 and d["model"] == "org/checkpoint" and "compressor" not in d


def test_follows_a_ranking_compressors_order(ranking_compressor, check_provenance):
    nodes = _nodes([TEXT, "Berlin is the capital of Germany. It is known for its clubs.", TEXT])
    out = CtxcompPostprocessor(compressor=ranking_compressor, ratio=0.5).postprocess_nodes(
        nodes, query_str="q"
    )
    assert [n.node.node_id for n in out] == ["n2", "n1", "n0"]
    for n in out:
        src = nodes[n.node.metadata["ctxcomp"]["input_index"]]
        assert src.node.node_id == n.node.node_id
        check_provenance(n.node.text, src.node.text, n.node.metadata["ctxcomp"]["kept_spans"])
