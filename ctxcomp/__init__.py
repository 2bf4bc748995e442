"""ctxcomp: compress prompt context for LLMs with an exact budget and provenance.

>>> import ctxcomp
>>> result = ctxcomp.compress(text, ratio=0.33, model="path/or/hub-id")  # doctest: +SKIP
>>> result.text, result.compressed_tokens, result.spans  # doctest: +SKIP

Importing ctxcomp is light: torch and transformers load only when a model does.
"""

from . import _moved, backends, text, vision  # noqa: F401  (they register their names)
from .api import compress, load_compressor
from .budget import Budget
from .coarse import CoarseToFineCompressor
from .compressors import Compressor, TokenClassifierCompressor, TokenClassifierOptions
from .config import PipelineConfig
from .config import build as build_pipeline
from .errors import BudgetError, CtxcompError, InputError, MissingDependencyError, ModelLoadError
from .result import CompressionResult, Document, DocumentResult, KeptSpan, UnitScores
from .text.protect import Protection
from .tokens import ReaderTokenizer, get_tokenizer

__version__ = "0.1.0"
_moved.install()  # old module paths (ctxcomp.pipeline, ...) still import, with a warning

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
