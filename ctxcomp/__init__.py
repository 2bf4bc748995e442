"""ctxcomp: compress prompt context for LLMs with an exact budget and provenance.

>>> import ctxcomp
>>> result = ctxcomp.compress(text, ratio=0.33, model="path/or/hub-id")  # doctest: +SKIP
>>> result.text, result.compressed_tokens, result.spans  # doctest: +SKIP

Importing ctxcomp is light: torch and transformers load only when a model does.
"""

from . import vision  # noqa: F401  (registers the visual-token methods by name; light)
from .api import compress, load_compressor
from .budget import Budget
from .coarse import CoarseToFineCompressor
from .compressors import Compressor, TokenClassifierCompressor, TokenClassifierOptions
from .errors import BudgetError, CtxcompError, InputError, MissingDependencyError, ModelLoadError
from .pipeline import PipelineConfig
from .pipeline import build as build_pipeline
from .result import CompressionResult, Document, DocumentResult, KeptSpan, UnitScores
from .structure import Protection
from .tokens import ReaderTokenizer, get_tokenizer

__version__ = "0.1.0"

__all__ = [
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
