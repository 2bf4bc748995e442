"""The generic core every compression method plugs into.

A method is a :class:`Compressor`: it takes :class:`Request` objects (inputs, a
:class:`~ctxcomp.Budget`, an optional question) and returns a :class:`Result` of its own
kind — text (:class:`~ctxcomp.CompressionResult`), latent embeddings
(``ctxcomp.latent.LatentPrompt``) or kept visual tokens (``ctxcomp.vision.VisualResult``).
Methods are found by name through the registries in :mod:`ctxcomp.core.registry`, and every
result carries the ``config_hash`` of what produced it (:mod:`ctxcomp.core.fingerprint`).

Importing this package is light: no torch, no transformers.
"""

from .compressor import Compressor, ProgressCallback
from .fingerprint import config_hash, digest, file_fingerprint, model_fingerprint
from .registry import Registry, backends, compressors, rankers
from .request import Request
from .result import Result

__all__ = [
    "Compressor",
    "ProgressCallback",
    "Registry",
    "Request",
    "Result",
    "backends",
    "compressors",
    "config_hash",
    "digest",
    "file_fingerprint",
    "model_fingerprint",
    "rankers",
]
