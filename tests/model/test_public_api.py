import subprocess
import sys

import pytest

import ctxcomp
from tests.conftest import REPO


def test_public_surface_is_explicit():
    assert sorted(ctxcomp.__all__) == sorted(
        [
            "Budget",
            "BudgetError",
            "CoarseToFineCompressor",
            "CompressionResult",
            "Compressor",
            "CtxcompError",
            "Document",
            "DocumentResult",
            "InputError",
            "KeptSpan",
            "MissingDependencyError",
            "ModelLoadError",
            "PipelineConfig",
            "Protection",
            "ReaderTokenizer",
            "TokenClassifierCompressor",
            "TokenClassifierOptions",
            "UnitScores",
            "__version__",
            "build_pipeline",
            "compress",
            "get_tokenizer",
            "load_compressor",
        ]
    )
    for name in ctxcomp.__all__:
        assert hasattr(ctxcomp, name), name


def test_import_is_light():
    code = (
        "import sys, ctxcomp\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'langchain_core', "
        "'sentence_transformers', 'onnxruntime') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_missing_dependency_hint(monkeypatch):
    from ctxcomp._deps import require

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(ctxcomp.MissingDependencyError, match=r"pip install 'ctxcomp\[faiss\]'"):
        require("faiss")


def test_compress_with_the_embedded_default_model():
    """No model named: the embedded default is used, offline, and the budget holds."""
    text = (REPO / "docs" / "examples" / "rag_context.txt").read_text(encoding="utf-8")
    r = ctxcomp.compress(text, ratio=0.33)
    assert r.compressed_tokens <= r.target_tokens == int(0.33 * r.original_tokens)
    q = ctxcomp.compress(text, target_tokens=200, question="When are the observing evenings?")
    assert q.question_aware and q.compressed_tokens <= 200
