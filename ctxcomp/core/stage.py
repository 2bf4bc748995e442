"""Stages that compose: what a coarse stage tells a fine stage, and what a fine stage offers.

A coarse stage (``ctxcomp.CoarseToFineCompressor``: rank documents and sentences by a
question) works in front of ANY text compressor that is a :class:`FineStage`: it counts
in the fine stage's :attr:`~FineStage.reader_tokenizer`, joins documents with its
:attr:`~FineStage.separator`, and hands it one :class:`Guidance` per request through
:meth:`~FineStage.run_guided`. The fine stage selects under each request's one budget with
the guidance applied (documents dropped, unit scores raised, sentences excluded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .compressor import ProgressCallback
from .request import Request

if TYPE_CHECKING:
    from ..result import CompressionResult
    from ..tokens import ReaderTokenizer

# (document index, document text, unit starts, unit ends) -> additive score per unit
UnitBias = Callable[[int, str, Any, Any], Any]
# (document index, document text) -> character spans whose units must not be kept
ExcludeSpans = Callable[[int, str], list[tuple[int, int]]]


@dataclass(frozen=True)
class Guidance:
    """What a coarse stage tells a fine stage about one request.

    ``drop`` maps a document index to the reason it was removed before scoring;
    ``bias`` shifts unit scores (e.g. by document rank and sentence relevance) so the single
    global budget spends more on what matters; ``exclude`` removes sentence spans;
    ``info`` carries per-document (relevance, rank) for the result, ``shortened`` why a
    kept document was cut, ``notes`` what the result should say.
    """

    notes: tuple[str, ...] = ()
    drop: Mapping[int, str] = field(default_factory=dict)
    bias: UnitBias | None = None
    exclude: ExcludeSpans | None = None
    info: Mapping[int, tuple[float, int]] = field(default_factory=dict)
    shortened: Mapping[int, str] = field(default_factory=dict)
    question_aware: bool = False

    def doc_info(
        self, i: int, *, dropped_by_budget: bool, unchanged: bool = False
    ) -> dict[str, Any]:
        """``relevance``, ``rank`` and ``reason`` of document ``i`` for its result."""
        rel, rank = self.info.get(i, (None, None))
        if i in self.drop:
            reason: str | None = self.drop[i]
        elif dropped_by_budget:
            reason = "dropped by the token budget"
        elif unchanged:
            reason = None
        else:
            reason = self.shortened.get(i)
        return {"relevance": rel, "rank": rank, "reason": reason}


@runtime_checkable
class FineStage(Protocol):
    """A text compressor a coarse stage can steer (the token classifier is one)."""

    name: str
    # the reader as configured (a tokenizer name or object); results name it
    reader: str | ReaderTokenizer

    @property
    def reader_tokenizer(self) -> ReaderTokenizer:
        """The tokenizer budgets are counted in."""
        ...

    @property
    def separator(self) -> str:
        """What joins a request's documents in the output (before newline adaptation)."""
        ...

    @property
    def config_hash(self) -> str: ...

    def run_guided(
        self,
        requests: Sequence[Request],
        guidance: Sequence[Guidance],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[CompressionResult]:
        """Compress ``requests`` (one result each, in order) with one guidance per request."""
        ...
