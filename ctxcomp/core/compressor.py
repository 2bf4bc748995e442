"""The compressor contract: one method to implement (``run``), one verb to call (``compress``).

A compressor turns :class:`~ctxcomp.core.Request` objects into results of its own kind.
Subclasses implement :meth:`Compressor.config` (everything that determines the output) and
:meth:`Compressor.run` (a batch of requests -> one result each); they may override
:meth:`Compressor.inputs` to accept other inputs than documents. Everything user-facing —
``compress``, ``compress_batch``, the async forms, argument validation, ``config_hash`` —
is derived here, so every method behaves the same at the API, the CLI, the proxy and in
batch runs.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from ..budget import Budget
from ..errors import InputError
from .fingerprint import config_hash
from .request import Request
from .result import Result

ProgressCallback = Callable[[int, int], None]  # (done, total)
R = TypeVar("R", bound=Result)

KINDS = ("text", "latent", "visual")


class Compressor(ABC, Generic[R]):
    """Base class of every compression method.

    ``name`` identifies the method in results and configs; ``kind`` says what it returns:
    ``"text"`` (:class:`~ctxcomp.CompressionResult`), ``"latent"`` (embeddings for a
    model's ``inputs_embeds``) or ``"visual"`` (kept/merged visual-token indices).
    """

    name: ClassVar[str] = "compressor"
    kind: ClassVar[str] = "text"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind not in KINDS:
            raise TypeError(f"{cls.__name__}.kind must be one of {KINDS}, got {cls.kind!r}")

    # -- what subclasses implement ---------------------------------------------------

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that determines the output."""

    @abstractmethod
    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[R]:
        """Compress validated requests, one result per request, in order. Model work may be
        batched across requests; ``progress`` is called with (done, total) work units."""

    def inputs(self, prompt: Any) -> tuple[Any, ...]:
        """This method's input items for one user prompt (default: text documents from a
        string, a :class:`~ctxcomp.Document`, a mapping or a sequence of them)."""
        from ..result import as_documents

        return tuple(as_documents(prompt))

    # -- derived ---------------------------------------------------------------------

    @property
    def config_hash(self) -> str:
        """Stable digest of ``{"compressor": name, **config()}``; results carry it."""
        return config_hash({"compressor": self.name, **self.config()})

    def request(
        self,
        prompt: Any,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
    ) -> Request:
        """A validated :class:`Request` for one prompt."""
        return Request(self.inputs(prompt), Budget.of(ratio, target_tokens, budget), question)

    def compress(
        self,
        prompt: Any,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> R:
        """Compress one prompt to the budget (exactly one of ``ratio``, ``target_tokens``,
        ``budget``)."""
        req = self.request(
            prompt, ratio=ratio, target_tokens=target_tokens, budget=budget, question=question
        )
        return self.run([req], progress=progress)[0]

    def compress_batch(
        self,
        prompts: Sequence[Any],
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[R]:
        """Compress several prompts with one budget and question (model work batched)."""
        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
            raise InputError("compress_batch takes a sequence of prompts; use compress() for one")
        b = Budget.of(ratio, target_tokens, budget)
        reqs = [Request(self.inputs(p), b, question) for p in prompts]
        return self.run(reqs, progress=progress)

    async def acompress(
        self,
        prompt: Any,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
    ) -> R:
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
        prompts: Sequence[Any],
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        question: str | None = None,
    ) -> list[R]:
        """:meth:`compress_batch` in a worker thread."""
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
