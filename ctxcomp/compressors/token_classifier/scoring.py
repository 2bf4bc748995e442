"""Scoring: keep probabilities of every model window, through the segment cache when
there is one, else through an in-process memo of recent windows (exact token ids)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.compressor import ProgressCallback
from ...reuse import ArrayLRU
from .doc import DocTokens


@dataclass(frozen=True)
class ScoreSource:
    """Where one call's window scores come from: a loaded classifier (``model``: a
    :class:`~ctxcomp.backends.hf.HFTokenClassifier`) and, when ``cache`` is set (a
    :class:`~ctxcomp.cache.SegmentCache`), the segment cache under ``namespace``."""

    model: Any
    keep_label: int
    cache: Any = None
    namespace: str = "default"

    def config(self) -> dict[str, Any]:
        """Everything a window's keep probabilities depend on (not the budget or options)."""
        m = self.model
        return {
            "model": m.fingerprint,
            "backend": m.backend,
            "device": str(getattr(m, "device", "cpu")).split(":")[0],
            "keep_label": self.keep_label,
            "prefix": list(getattr(m, "prefix", [])),
            "suffix": list(getattr(m, "suffix", [])),
        }


class Scorer:
    """Scores documents' windows from a :class:`ScoreSource`. Without a segment cache,
    ``memo_bytes`` of recent windows' probabilities are reused in-process (exact token ids
    as the key: a second question over a document does not run the model again); None:
    no memo."""

    def __init__(self, memo_bytes: int | None) -> None:
        self.memo = ArrayLRU(memo_bytes) if memo_bytes is not None else None

    def score(
        self,
        src: ScoreSource,
        docs: list[DocTokens],
        progress: ProgressCallback | None,
        skip: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """Keep probabilities of every window; with ``skip`` (per document, a character
        mask of excluded text, or None) windows whose tokens all lie in excluded text are
        left at 0: their units are never kept."""
        windows: list[np.ndarray] = []
        owner: list[tuple[int, int, int]] = []
        for di, d in enumerate(docs):
            cb = d.chunk_bounds
            ex = skip[di] if skip is not None else None
            for a, b in zip(cb[:-1], cb[1:]):
                if (
                    ex is not None
                    and b > a
                    and ex[np.minimum(d.tok_starts[a:b], ex.size - 1)].all()
                ):
                    continue
                windows.append(d.ids[a:b])
                owner.append((di, int(a), int(b)))
        for d in docs:
            d.probs = np.zeros(d.ids.size, dtype=np.float32)
        if not windows:
            return
        if src.cache is not None:
            probs = self.cache_predict(src, docs, owner, windows, progress)
        else:
            probs = self.predict_reusing(src, windows, progress)
        for (di, a, b), p in zip(owner, probs):
            docs[di].probs[a:b] = p  # type: ignore[index]

    def predict_reusing(
        self, src: ScoreSource, windows: list[np.ndarray], progress: ProgressCallback | None
    ) -> list[np.ndarray]:
        """The model's probabilities of ``windows``, each distinct window scored once and
        kept in the in-process memo for later requests."""
        memo = self.memo
        if memo is None or memo.max_bytes <= 0:
            return src.model.predict(windows, progress=progress)
        keys = [w.astype("<i4").tobytes() for w in windows]
        got = memo.get_many(keys)
        todo = list({k: i for i, k in reversed(list(enumerate(keys))) if k not in got}.values())
        if todo:
            todo.sort()
            fresh = src.model.predict([windows[i] for i in todo], progress=progress)
            for i, p in zip(todo, fresh):
                got[keys[i]] = p
                memo.put(keys[i], p)
        return [got[k] for k in keys]

    def cache_predict(
        self,
        src: ScoreSource,
        docs: list[DocTokens],
        owner: list[tuple[int, int, int]],
        windows: list[np.ndarray],
        progress: ProgressCallback | None,
    ) -> list[np.ndarray]:
        from ...cache.keys import config_hash
        from ...cache.token_scores import score_windows

        def text_of(i: int) -> str:
            di, a, b = owner[i]
            d = docs[di]
            return d.text[int(d.tok_starts[a]) : int(d.tok_ends[b - 1])] if b > a else ""

        return score_windows(
            src.cache,
            src.namespace,
            config_hash(src.config()),
            windows,
            src.model.predict,
            texts=text_of,
            progress=progress,
        )
