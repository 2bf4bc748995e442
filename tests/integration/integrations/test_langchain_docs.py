"""Every python example of docs/integrations.md's LangChain section, executed on a real
InMemoryVectorStore retriever (MiniLM embeddings) and a deterministic echo LLM."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_classic")
pytest.importorskip("langchain_ctxcomp")

DOC_SECTION = "LangChain"


def test_doc_example(doc_block, doc_models, lc_retriever, echo_llm, run_doc_block):
    line, code = doc_block
    run_doc_block(
        code, line, {"__name__": "__doc_example__", "retriever": lc_retriever, "llm": echo_llm}
    )
    assert doc_models, "the example loads the documented model"


def test_every_python_example_is_executed(doc_sections):
    assert set(doc_sections) == {"LangChain", "LlamaIndex"}, (
        "python blocks outside the tested sections"
    )
    assert len(doc_sections["LangChain"]) >= 4 and len(doc_sections["LlamaIndex"]) >= 2
