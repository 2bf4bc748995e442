"""The compressor interface: one verb, ``compress``, plus batch and async forms."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from ..budget import Budget
from ..core.compressor import Compressor as CoreCompressor
from ..core.compressor import ProgressCallback
from ..core.request import Request
from ..core.stage import ExcludeSpans, Guidance, UnitBias
from ..errors import InputError
from ..result import CompressionResult, Document, PromptInput, as_documents
from ..tokens import DEFAULT_READER, ReaderTokenizer
from ..validate import check_question

__all__ = ["Compressor", "ExcludeSpans", "Guidance", "ProgressCallback", "UnitBias"]


class Compressor(CoreCompressor[CompressionResult]):
    """Base class of the text compressors (on the generic contract, :mod:`ctxcomp.core`).

    Subclasses implement :meth:`compress_batch` (or :meth:`run`, the generic contract's one
    method); :meth:`compress` and :meth:`acompress` are derived from it. ``config`` returns everything that determines the output, and
    ``config_hash`` is its stable digest: results, cache keys and eval rows carry it.
    """

    name = "compressor"

    def __init__(self, *, reader: str | ReaderTokenizer = DEFAULT_READER) -> None:
        self.reader = reader

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[CompressionResult]:
        """The generic contract's method for a compressor written against
        :meth:`compress_batch`: runs of requests with the same budget and question go to
        one ``compress_batch`` call each, in order."""
        out: list[CompressionResult] = []
        i = 0
        while i < len(requests):
            first = requests[i]
            j = i + 1
            while (
                j < len(requests)
                and requests[j].budget == first.budget
                and requests[j].question == first.question
            ):
                j += 1
            out += self.compress_batch(
                [list(r.documents) for r in requests[i:j]],
                budget=first.budget,
                question=first.question,
                progress=progress,
            )
            i = j
        return out

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
