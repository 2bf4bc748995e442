"""LangChain adapters with real parts: InMemoryVectorStore + MiniLM embeddings, a real
retriever, ContextualCompressionRetriever, DocumentCompressorPipeline and LCEL chains
ending in a deterministic echo LLM. Invariants, not golden strings: budget held, one
output per kept input, own metadata and id, kept spans map back to the input text."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_ctxcomp")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_ctxcomp import (
    CtxcompContextCompressor,
    CtxcompDocumentCompressor,
    DroppedDocument,
)

import ctxcomp

QUESTION = "How should a startup think about hiring its first employees?"
PROMPT = PromptTemplate.from_template(
    "Answer the question from the context.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
)


def _classic():
    return pytest.importorskip("langchain_classic.retrievers")


def _count(reader: str, text: str) -> int:
    return ctxcomp.get_tokenizer(reader).count(text)


def _check_docs(out, store, target: int, check_provenance, reader: str = "cl100k_base") -> None:
    assert out, "something is kept"
    ids = [d.id for d in out]
    assert len(set(ids)) == len(ids), "one output document per input document"
    for d in out:
        (orig,) = store.get_by_ids([d.id])
        stats = d.metadata["ctxcomp"]
        assert d.metadata["source"] == orig.metadata["source"]
        assert d.metadata["paragraph"] == orig.metadata["paragraph"]
        assert set(d.metadata) == {*orig.metadata, "ctxcomp"}
        check_provenance(d.page_content, orig.page_content, stats["kept_spans"])
        assert stats["original_tokens"] == _count(reader, orig.page_content)
        assert stats["compressed_tokens"] == _count(reader, d.page_content)
        assert stats["compressed_tokens"] <= stats["original_tokens"]
    assert _count(reader, "\n\n".join(d.page_content for d in out)) <= target


# -- document compressor --------------------------------------------------------------------


def test_contextual_compression_retriever(
    lc_store, lc_retriever, minilm_compressor, check_provenance
):
    retrievers = _classic()
    comp = CtxcompDocumentCompressor(compressor=minilm_compressor, target_tokens=120)
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=comp, base_retriever=lc_retriever
    )
    raw = lc_retriever.invoke(QUESTION)
    out = retriever.invoke(QUESTION)
    _check_docs(out, lc_store, 120, check_provenance)
    # input order kept, and every output comes from a retrieved document
    order = [d.id for d in raw]
    assert [d.id for d in out] == [i for i in order if i in {d.id for d in out}]
    for d in out:
        assert d.metadata["ctxcomp"]["input_index"] == order.index(d.id)
        assert d.metadata["ctxcomp"]["call"]["documents"] == len(raw)
    # the store's documents are untouched
    for d in lc_store.get_by_ids(order):
        assert "ctxcomp" not in d.metadata


def test_contextual_compression_retriever_async(
    lc_store, lc_retriever, tiny_bert_compressor, check_provenance
):
    retrievers = _classic()
    comp = CtxcompDocumentCompressor(compressor=tiny_bert_compressor, ratio=0.3)
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=comp, base_retriever=lc_retriever
    )
    out = asyncio.run(retriever.ainvoke(QUESTION))
    sync = retriever.invoke(QUESTION)
    assert [(d.id, d.page_content) for d in out] == [(d.id, d.page_content) for d in sync]
    total = out[0].metadata["ctxcomp"]["call"]["original_tokens"]
    _check_docs(out, lc_store, int(0.3 * total), check_provenance)


def test_document_compressor_pipeline(lc_retriever, tiny_bert_compressor):
    retrievers = _classic()
    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline
    from langchain_text_splitters import CharacterTextSplitter

    splitter = CharacterTextSplitter(chunk_size=300, chunk_overlap=0, separator=". ")
    pipeline = DocumentCompressorPipeline(
        transformers=[
            splitter,
            CtxcompDocumentCompressor(compressor=tiny_bert_compressor, ratio=0.5),
        ]
    )
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=pipeline, base_retriever=lc_retriever
    )
    raw = lc_retriever.invoke(QUESTION)
    chunks = splitter.split_documents(raw)
    out = retriever.invoke(QUESTION)
    assert 0 < len(out) <= len(chunks)
    for d in out:
        stats = d.metadata["ctxcomp"]
        src = chunks[stats["input_index"]]
        assert d.metadata["source"] == src.metadata["source"]
        assert stats["kept_spans"] and stats["kept_spans"][-1][1] <= len(src.page_content)
    assert asyncio.run(retriever.ainvoke(QUESTION)) == out


class _Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))


# No force tokens (no ".", "?", "!" or newline) and a tight budget: the budget removes
# whole documents.
_PLAIN = [
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu",
    "red orange yellow green blue indigo violet crimson scarlet amber",
    "one two three four five six seven eight nine ten eleven twelve",
    "north south east west up down left right inside outside above below",
]


def test_dropped_documents_are_reported(tiny_bert_compressor):
    seen: list[list[DroppedDocument]] = []
    comp = CtxcompDocumentCompressor(
        compressor=tiny_bert_compressor, target_tokens=6, on_dropped=seen.append
    )
    docs = [Document(page_content=t, metadata={"k": i}, id=f"p{i}") for i, t in enumerate(_PLAIN)]
    handler = _Events()
    from langchain_core.callbacks import CallbackManager

    out = comp.compress_documents(docs, "colours", callbacks=CallbackManager([handler]))
    (report,) = seen
    dropped = {x.index for x in report}
    kept = {d.metadata["ctxcomp"]["input_index"] for d in out}
    assert dropped and kept
    assert dropped | kept == set(range(len(docs))) and not dropped & kept
    assert all(x.reason == "budget" and x.document is docs[x.index] for x in report)
    assert all(x.original_tokens > 0 for x in report)
    assert [e[0] for e in handler.events] == ["ctxcomp_dropped_documents"]
    assert handler.events[0][1] == report
    for d in out:
        assert d.metadata["ctxcomp"]["call"]["dropped"] == sorted(dropped)
        assert d.metadata["k"] == int(d.id[1:])


def test_dropped_event_reaches_retriever_callbacks(lc_store, tiny_bert_compressor):
    retrievers = _classic()
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(lc_store.embeddings)
    store.add_documents([Document(page_content=t, id=f"p{i}") for i, t in enumerate(_PLAIN)])
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=CtxcompDocumentCompressor(compressor=tiny_bert_compressor, target_tokens=6),
        base_retriever=store.as_retriever(search_kwargs={"k": 4}),
    )
    handler = _Events()
    out = retriever.invoke("colours", config={"callbacks": [handler]})
    assert len(out) < 4
    names = [n for n, _ in handler.events]
    assert names == ["ctxcomp_dropped_documents"]
    assert len(handler.events[0][1]) == 4 - len(out)
    handler2 = _Events()
    asyncio.run(retriever.ainvoke("colours", config={"callbacks": [handler2]}))
    assert [n for n, _ in handler2.events] == ["ctxcomp_dropped_documents"]


def test_budget_at_or_above_input_keeps_everything(tiny_bert_compressor):
    docs = [Document(page_content="Short text. Nothing to remove.", metadata={"a": 1})]
    (out,) = CtxcompDocumentCompressor(
        compressor=tiny_bert_compressor, target_tokens=500
    ).compress_documents(docs, "q")
    assert out.page_content == docs[0].page_content
    assert out.metadata["ctxcomp"]["kept_spans"] == [[0, len(docs[0].page_content)]]


def test_construction_errors(tiny_bert, tiny_bert_compressor):
    with pytest.raises(ctxcomp.InputError, match="not both"):
        CtxcompDocumentCompressor(compressor=tiny_bert_compressor, model="org/checkpoint")
    with pytest.raises(ValueError, match="Compressor"):  # pydantic checks the field's type
        CtxcompDocumentCompressor(compressor=object())
    with pytest.raises(ctxcomp.BudgetError):
        CtxcompDocumentCompressor(compressor=tiny_bert_compressor, ratio=0.5, target_tokens=10)
    with pytest.raises(ctxcomp.BudgetError):
        CtxcompDocumentCompressor(compressor=tiny_bert_compressor, ratio=1.5)
    with pytest.raises(ctxcomp.InputError, match="counts its budget in 'cl100k_base'"):
        CtxcompDocumentCompressor(compressor=tiny_bert_compressor, reader="o200k_base")
    # the coarse-to-fine pipeline counts in its fine stage's reader, and says so
    model, tok = tiny_bert
    o200k = ctxcomp.CoarseToFineCompressor(
        ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", reader="o200k_base")
    )
    with pytest.raises(ctxcomp.InputError, match="counts its budget in 'o200k_base'"):
        CtxcompDocumentCompressor(compressor=o200k, reader="cl100k_base")
    assert CtxcompDocumentCompressor(compressor=o200k, reader="o200k_base").compressor is o200k
    assert CtxcompDocumentCompressor(compressor=tiny_bert_compressor).budget == ctxcomp.Budget(
        ratio=0.5
    )


@pytest.fixture
def fake_ctxcomp_compress(monkeypatch, tiny_bert_compressor):
    """``ctxcomp.compress`` recorded, running the tiny model (no hub download)."""
    calls = []

    def fake(
        prompt, *, budget=None, ratio=None, target_tokens=None, question=None, model=None, **kw
    ):
        calls.append(
            {
                "model": model,
                "question": question,
                "budget": budget,
                "target_tokens": target_tokens,
                **kw,
            }
        )
        return tiny_bert_compressor.compress(
            prompt, budget=budget, ratio=ratio, target_tokens=target_tokens, question=question
        )

    monkeypatch.setattr(ctxcomp, "compress", fake)
    return calls


def test_model_id_goes_through_ctxcomp_compress(fake_ctxcomp_compress):
    docs = [Document(page_content="Paris is the capital of France. It has many museums.", id="a")]
    comp = CtxcompDocumentCompressor(model="org/checkpoint", reader="cl100k_base", target_tokens=6)
    (out,) = comp.compress_documents(docs, "capital?")
    (out_async,) = asyncio.run(comp.acompress_documents(docs, "capital?"))
    assert out == out_async and out.id == "a"
    assert fake_ctxcomp_compress == 2 * [
        {
            "model": "org/checkpoint",
            "question": "capital?",
            "budget": ctxcomp.Budget(target_tokens=6),
            "target_tokens": None,
            "reader": "cl100k_base",
        }
    ]
    fake_ctxcomp_compress.clear()
    CtxcompDocumentCompressor(use_query=False).compress_documents(
        docs, "capital?"
    )  # ctxcomp's default model
    assert (
        fake_ctxcomp_compress[0]["model"] is None and fake_ctxcomp_compress[0]["question"] is None
    )
    assert "reader" not in fake_ctxcomp_compress[0]
    r = CtxcompContextCompressor(model="org/checkpoint", max_prompt_tokens=40, prompt=PROMPT)
    out = r.invoke({"context": [d.page_content for d in docs] * 5, "question": "capital?"})
    assert _count("cl100k_base", PROMPT.format(**out)) <= 40
    assert {c["model"] for c in fake_ctxcomp_compress[1:]} == {"org/checkpoint"}


# -- LCEL runnable ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_reader_compressor(tiny_bert, minilm_path):
    """Budget counted in the chain model's tokenizer: here MiniLM's WordPiece (hf:<path>)."""
    model, tok = tiny_bert
    return ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", reader=f"hf:{minilm_path}")


def test_lcel_chain_fits_whole_prompt_in_model_tokens(
    lc_retriever, echo_llm, model_reader_compressor, minilm_path
):
    reader = f"hf:{minilm_path}"
    compress = CtxcompContextCompressor(
        compressor=model_reader_compressor, max_prompt_tokens=200, prompt=PROMPT, reader=reader
    )
    chain = (
        {"context": lc_retriever, "question": RunnablePassthrough()} | compress | PROMPT | echo_llm
    )
    answer = chain.invoke(QUESTION)
    assert answer.startswith("Answer the question from the context.")
    assert answer.endswith(f"Question: {QUESTION}\nAnswer:")
    assert _count(reader, answer) <= 200
    raw = "\n\n".join(d.page_content for d in lc_retriever.invoke(QUESTION))
    assert _count(reader, raw) > 200, "the test compresses something"
    assert _count(reader, answer) > 150, "the budget is used, not wasted"
    answer_async = asyncio.run(chain.ainvoke(QUESTION))
    assert answer_async == answer
    # batch goes through the same path
    assert chain.batch([QUESTION, QUESTION]) == [answer, answer]


def test_lcel_chain_context_budget_and_stats(lc_retriever, echo_llm, minilm_compressor):
    compress = CtxcompContextCompressor(
        compressor=minilm_compressor, target_tokens=100, result_key="ctxcomp_result"
    )
    seen = {}

    def keep(values):
        seen.update(values)
        return values

    chain = (
        {"context": lc_retriever, "question": RunnablePassthrough()}
        | compress
        | keep
        | PROMPT
        | echo_llm
    )
    answer = chain.invoke(QUESTION)
    result = seen["ctxcomp_result"]
    assert isinstance(result, ctxcomp.CompressionResult)
    assert seen["context"] == result.text and result.text in answer
    assert result.compressed_tokens <= 100 == result.target_tokens
    assert _count("cl100k_base", seen["context"]) == result.compressed_tokens


def test_lcel_output_documents(lc_retriever, lc_store, tiny_bert_compressor, check_provenance):
    compress = CtxcompContextCompressor(
        compressor=tiny_bert_compressor, target_tokens=100, output="documents"
    )
    chain = {"context": lc_retriever, "question": RunnablePassthrough()} | compress
    out = chain.invoke(QUESTION)
    assert out["question"] == QUESTION
    _check_docs(out["context"], lc_store, 100, check_provenance)
    out_async = asyncio.run(chain.ainvoke(QUESTION))
    assert out_async["context"] == out["context"]


def test_runnable_context_shapes(tiny_bert_compressor):
    r = CtxcompContextCompressor(compressor=tiny_bert_compressor, target_tokens=8)
    text = "The cat sat on the mat. The dog barked at the mailman all afternoon long."
    out = r.invoke({"context": text, "question": "who barked?", "other": 1})
    assert out["other"] == 1 and out["question"] == "who barked?"
    assert _count("cl100k_base", out["context"]) <= 8
    assert r.invoke({"context": Document(page_content=text)})["context"] == out["context"]
    assert r.invoke({"context": [text]})["context"] == out["context"]
    assert r.invoke({"context": None})["context"] == ""
    assert r.invoke({"context": []})["context"] == ""
    with pytest.raises(ctxcomp.InputError, match="no 'context' key"):
        r.invoke({"question": "q"})
    with pytest.raises(ctxcomp.InputError, match="input dict"):
        r.invoke("just a string")  # type: ignore[arg-type]
    with pytest.raises(ctxcomp.InputError, match="must be a string, a Document"):
        r.invoke({"context": 42})
    with pytest.raises(ctxcomp.InputError, match="max_prompt_tokens needs prompt"):
        CtxcompContextCompressor(compressor=tiny_bert_compressor, max_prompt_tokens=100)
    with pytest.raises(ctxcomp.BudgetError, match="one of ratio"):
        CtxcompContextCompressor(
            compressor=tiny_bert_compressor, max_prompt_tokens=100, prompt=PROMPT, ratio=0.5
        )


def test_follows_a_ranking_compressors_order(
    ranking_compressor, lc_retriever, lc_store, check_provenance
):
    comp = CtxcompDocumentCompressor(compressor=ranking_compressor, ratio=0.5)
    raw = lc_retriever.invoke(QUESTION)
    out = comp.compress_documents(raw, QUESTION)
    assert [d.id for d in out] == [d.id for d in reversed(raw)]
    for d in out:
        assert d.metadata["ctxcomp"]["question_aware"] is True
        assert raw[d.metadata["ctxcomp"]["input_index"]].id == d.id
        (orig,) = lc_store.get_by_ids([d.id])
        check_provenance(d.page_content, orig.page_content, d.metadata["ctxcomp"]["kept_spans"])


def test_runnable_reports_dropped_documents(tiny_bert_compressor):
    seen: list[list[DroppedDocument]] = []
    r = CtxcompContextCompressor(
        compressor=tiny_bert_compressor, target_tokens=6, on_dropped=seen.append
    )
    handler = _Events()
    context = ["", *_PLAIN]
    out = r.invoke({"context": context, "question": "colours"}, config={"callbacks": [handler]})
    assert _count("cl100k_base", out["context"]) <= 6
    (report,) = seen
    assert report[0].index == 0 and report[0].reason == "empty"
    assert {x.reason for x in report[1:]} == {"budget"} and len(report) > 1
    assert [(n, d) for n, d in handler.events] == [("ctxcomp_dropped_documents", report)]
    handler2 = _Events()
    out2 = asyncio.run(
        r.ainvoke({"context": context, "question": "colours"}, config={"callbacks": [handler2]})
    )
    assert out2 == out and handler2.events == handler.events


def test_model_path_is_question_aware(minilm_classifier_dir):
    """``model=`` runs through ``ctxcomp.compress``: given the query, ctxcomp's question-aware
    stage ranks the documents (real MiniLM sentence embeddings), unpatched."""
    docs = [
        Document(
            page_content="Paris is the capital of France. It has many museums and cafes.", id="a"
        ),
        Document(
            page_content="The mitochondria is the powerhouse of the cell. Cells divide by mitosis.",
            id="b",
        ),
        Document(
            page_content="France borders Spain and Germany. Its capital, Paris, sits on the Seine.",
            id="c",
        ),
    ]
    seen: list[list[DroppedDocument]] = []
    comp = CtxcompDocumentCompressor(
        model=str(minilm_classifier_dir), target_tokens=20, on_dropped=seen.append
    )
    out = comp.compress_documents(docs, "What is the capital of France?")
    if not out[0].metadata["ctxcomp"]["question_aware"]:
        pytest.skip("this ctxcomp.compress has no question-aware stage")
    assert _count("cl100k_base", "\n\n".join(d.page_content for d in out)) <= 20
    ranks = {d.id: d.metadata["ctxcomp"].get("rank") for d in out}
    dropped = {x.document.id for x in (seen[0] if seen else [])}
    assert "b" in dropped or ranks["b"] == max(ranks.values()), "the off-topic document ranks last"
    assert {"a", "c"} & set(ranks)
