"""Bad input to the LangChain adapters: the behaviour documented in docs/integrations.md."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_ctxcomp")

from langchain_core.documents import Document
from langchain_core.prompts import PromptTemplate
from langchain_ctxcomp import CtxcompContextCompressor, CtxcompDocumentCompressor

import ctxcomp

TEXT = "Paris is the capital of France. It has many museums and a long history of art."


def _comp(c, **kw):
    seen: list = []
    return CtxcompDocumentCompressor(compressor=c, on_dropped=seen.append, **kw), seen


def test_empty_documents_are_dropped_and_reported(tiny_bert_compressor):
    comp, seen = _comp(tiny_bert_compressor, target_tokens=10)
    docs = [
        Document(page_content="", metadata={"i": 0}),
        Document(page_content=TEXT, metadata={"i": 1}),
        Document(page_content=" \n\t ", metadata={"i": 2}),
    ]
    out = comp.compress_documents(docs, "capital")
    assert [d.metadata["i"] for d in out] == [1]
    assert out[0].metadata["ctxcomp"]["input_index"] == 1
    assert out[0].metadata["ctxcomp"]["call"]["empty"] == [0, 2]
    assert [(x.index, x.reason, x.original_tokens) for x in seen[0]] == [
        (0, "empty", 0),
        (2, "empty", 0),
    ]
    # the empty documents cost nothing: the same budget as for the non-empty one alone
    (alone,) = comp.compress_documents([docs[1]], "capital")
    assert alone.page_content == out[0].page_content


def test_all_empty_or_no_documents_give_no_documents(tiny_bert_compressor):
    comp, seen = _comp(tiny_bert_compressor)
    assert comp.compress_documents([], "q") == []
    assert seen == []
    assert comp.compress_documents([Document(page_content="  ")], "q") == []
    assert [x.reason for x in seen[0]] == ["empty"]
    assert asyncio.run(comp.acompress_documents([Document(page_content="")], "q")) == []


def test_non_string_content_is_an_input_error(tiny_bert_compressor):
    comp, _ = _comp(tiny_bert_compressor)
    bad = Document.model_construct(page_content=123, metadata={})  # skips pydantic validation
    with pytest.raises(ctxcomp.InputError, match=r"document 1 has non-string page_content \(int\)"):
        comp.compress_documents([Document(page_content=TEXT), bad], "q")
    with pytest.raises(ctxcomp.InputError, match="without a 'page_content'"):
        comp.compress_documents([object()], "q")  # type: ignore[list-item]
    with pytest.raises(ctxcomp.InputError, match="sequence of documents"):
        comp.compress_documents("a string, not documents", "q")  # type: ignore[arg-type]
    with pytest.raises(ctxcomp.InputError, match="metadata must be a mapping"):
        comp.compress_documents([Document.model_construct(page_content=TEXT, metadata=[1])], "q")
    with pytest.raises(ctxcomp.InputError, match="query must be a string"):
        comp.compress_documents([Document(page_content=TEXT)], 42)  # type: ignore[arg-type]


def test_missing_metadata(tiny_bert_compressor):
    comp, _ = _comp(tiny_bert_compressor, ratio=0.5)

    class Bare:  # a duck-typed document without metadata or id
        page_content = TEXT

    docs = [Document.model_construct(page_content=TEXT, metadata=None), Bare(), TEXT]
    out = comp.compress_documents(docs, "capital")  # type: ignore[arg-type]
    assert len(out) == 3
    for i, d in enumerate(out):
        assert isinstance(d, Document)
        assert set(d.metadata) == {"ctxcomp"}
        assert d.metadata["ctxcomp"]["input_index"] == i


def test_huge_document(tiny_bert_compressor, long_text, check_provenance):
    huge = long_text[:40_000]  # ~9k reader tokens: many encoder windows
    small = [Document(page_content=TEXT, metadata={"n": i}, id=f"s{i}") for i in range(3)]
    docs = [small[0], Document(page_content=huge, metadata={"n": "huge"}, id="huge"), *small[1:]]
    comp, seen = _comp(tiny_bert_compressor, target_tokens=300)
    out = comp.compress_documents(docs, "what is this about?")
    reader = ctxcomp.get_tokenizer("cl100k_base")
    assert reader.count("\n\n".join(d.page_content for d in out)) <= 300
    by_id = {d.id: d for d in docs}
    for d in out:
        check_provenance(
            d.page_content, by_id[d.id].page_content, d.metadata["ctxcomp"]["kept_spans"]
        )
    assert {d.id for d in out} | {x.document.id for x in (seen[0] if seen else [])} == set(by_id)
    assert out[0].metadata["ctxcomp"]["call"]["original_tokens"] > 8_000


def test_budget_smaller_than_the_question(tiny_bert_compressor, tiny_bert):
    question = "What is the capital of France, and which museums should a visitor see first?"
    assert ctxcomp.get_tokenizer("cl100k_base").count(question) > 5
    # the document compressor's budget covers the documents only: the question is not in it
    comp, _ = _comp(tiny_bert_compressor, target_tokens=5)
    out = comp.compress_documents([Document(page_content=TEXT)], question)
    assert ctxcomp.get_tokenizer("cl100k_base").count(out[0].page_content) <= 5
    # strict: a budget below what must be kept (force tokens "?" and ".") is an error
    strict = ctxcomp.TokenClassifierCompressor(*tiny_bert, device="cpu", on_overflow="error")
    comp, _ = _comp(strict, target_tokens=1)
    with pytest.raises(ctxcomp.BudgetError, match="smaller than what must be kept"):
        comp.compress_documents([Document(page_content="Is it Paris? Yes, it is Paris.")], question)
    # a whole-prompt budget the template and question alone exceed is an error naming both
    prompt = PromptTemplate.from_template("Context: {context}\nQuestion: {question}")
    r = CtxcompContextCompressor(
        compressor=tiny_bert_compressor, max_prompt_tokens=10, prompt=prompt
    )
    with pytest.raises(ctxcomp.BudgetError, match="leaves no room for the context"):
        r.invoke({"context": [TEXT], "question": question})
    with pytest.raises(ctxcomp.BudgetError, match="leaves no room for the context"):
        asyncio.run(r.ainvoke({"context": [TEXT], "question": question}))
