"""Every python example of docs/integrations.md's LlamaIndex section, executed on a real
in-memory VectorStoreIndex (MiniLM embeddings) and LlamaIndex's MockLLM."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.postprocessor.ctxcomp")

DOC_SECTION = "LlamaIndex"


def test_doc_example(doc_block, doc_models, li_index, mock_llm, run_doc_block):
    line, code = doc_block
    run_doc_block(code, line, {"__name__": "__doc_example__", "index": li_index, "llm": mock_llm})
    assert doc_models, "the example loads the documented model"
