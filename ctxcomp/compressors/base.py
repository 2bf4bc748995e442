"""The compressor interface: one verb, ``compress``, plus batch and async forms."""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..budget import Budget
from ..errors import InputError
from ..result import CompressionResult, Document, PromptInput, as_documents
from ..tokens import DEFAULT_READER, ReaderTokenizer
from ..validate import check_question

ProgressCallback = Callable[[int, int], None]
# (document index, document text, unit starts, unit ends) -> additive score per unit
UnitBias = Callable[[int, str, Any, Any], Any]
# (document index, document text) -> character spans whose units must not be kept
ExcludeSpans = Callable[[int, str], list[tuple[int, int]]]


@dataclass(frozen=True)
class Guidance:
    """What a coarse stage tells a fine compressor about one request.

    ``drop`` maps a document index to the reason it was removed before scoring;
    ``bias`` shifts unit scores (e.g. by document rank and sentence relevance) so the single
    global budget spends more on what matters; ``exclude`` removes sentence spans;
    ``info`` carries per-document (relevance, rank) for the result.
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


class Compressor(ABC):
    """Base class of every compressor.

    Subclasses implement :meth:`compress_batch`; :meth:`compress` and :meth:`acompress` are
    derived from it. ``config`` returns everything that determines the output, and
    ``config_hash`` is its stable digest: results, cache keys and eval rows carry it.
    """

    name: str = "compressor"

    def __init__(self, *, reader: str | ReaderTokenizer = DEFAULT_READER) -> None:
        self.reader = reader

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that determines the output."""

    @property
    def config_hash(self) -> str:
        blob = json.dumps({"compressor": self.name, **self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @staticmethod
    def _prepare(
        prompts: Sequence[PromptInput],
        ratio: float | None,
        target_tokens: int | None,
        budget: Budget | None,
        question: str | None,
    ) -> tuple[Budget, list[list[Document]]]:
        """Validate a batch call's arguments; the prompts as lists of documents."""
        b = Budget.of(ratio, target_tokens, budget)
        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
            raise InputError("compress_batch takes a sequence of prompts; use compress() for one")
        check_question(question)  # ctxcomp/validate.py: one text policy for API and CLI
        return b, [as_documents(p) for p in prompts]

    @abstractmethod
    def compress_batch(
        self,
        prompts: Sequence[PromptInput],
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[CompressionResult]:
        """Compress several prompts at once (model work is batched across them)."""

    def compress(
        self,
        prompt: PromptInput,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> CompressionResult:
        """Compress one prompt (a string or a sequence of documents) to the budget."""
        return self.compress_batch(
            [prompt],
            ratio=ratio,
            target_tokens=target_tokens,
            budget=budget,
            question=question,
            progress=progress,
        )[0]

    async def acompress(
        self,
        prompt: PromptInput,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
    ) -> CompressionResult:
        """:meth:`compress` in a worker thread, so an event loop is never blocked."""
        return await asyncio.to_thread(
            self.compress,
            prompt,
            ratio=ratio,
            target_tokens=target_tokens,
            budget=budget,
            question=question,
        )

    async def acompress_batch(
        self,
        prompts: Sequence[PromptInput],
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
    ) -> list[CompressionResult]:
        return await asyncio.to_thread(
            self.compress_batch,
            prompts,
            ratio=ratio,
            target_tokens=target_tokens,
            budget=budget,
            question=question,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(config_hash={self.config_hash!r})"
