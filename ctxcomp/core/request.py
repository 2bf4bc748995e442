"""One compression request: what to compress, how much of it to keep, and for which question."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..budget import Budget
from ..errors import InputError


@dataclass(frozen=True)
class Request:
    """What a compressor is asked to do, once its user-facing arguments are validated.

    ``inputs`` are the method's own input items, in order: :class:`~ctxcomp.Document` for
    text and latent methods, visual-token inputs for visual pruners (each compressor's
    :meth:`~ctxcomp.core.Compressor.inputs` turns a user prompt into them). ``budget`` is
    how much to keep, counted in the method's own unit (reader tokens, latent slots, visual
    tokens); ``question`` is what the compressed context will be asked, when known.
    """

    inputs: tuple[Any, ...]
    budget: Budget
    question: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, tuple):
            object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.inputs:
            raise InputError("a request needs at least one input")
        if not isinstance(self.budget, Budget):
            raise InputError(f"budget must be a ctxcomp.Budget, got {type(self.budget).__name__}")
        if self.question is not None and not isinstance(self.question, str):
            raise InputError(f"question must be a string, got {type(self.question).__name__}")

    @property
    def documents(self) -> tuple[Any, ...]:
        """The inputs, under the name text methods use for them."""
        return self.inputs
