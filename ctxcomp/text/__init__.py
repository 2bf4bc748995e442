"""Text compression: documents in, a compressed prompt with provenance out.

Registers the text methods and the coarse stage's rankers by name
(:mod:`ctxcomp.core.registry`); importing this package is light.
"""

from ..core.registry import compressors, rankers

compressors.register(
    "token-classifier",
    "ctxcomp.models.loading:load_classifier",
    summary="LLMLingua-2-style keep/drop token classification (default: the embedded model)",
)
rankers.register(
    "bi-encoder",
    "ctxcomp.rankers:BiEncoderRanker",
    summary="cosine similarity of sentence embeddings (default: all-MiniLM-L6-v2)",
)
rankers.register(
    "cross-encoder",
    "ctxcomp.rankers:CrossEncoderRanker",
    summary="a sentence-transformers cross-encoder on (question, text) pairs",
)
rankers.register(
    "lm",
    "ctxcomp.rankers:LMRanker",
    summary="LongLLMLingua's signal: log-probability of the question given the text",
)
