"""The base of every result type: what all methods report, whatever they return."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..budget import Budget


class Result(ABC):
    """What every compressor returns, whatever its kind.

    Concrete results are frozen dataclasses that define these attributes as fields:
    ``compressor`` (the method's name), ``config_hash`` (digest of everything that
    determined the output), ``budget`` (as asked), ``original_tokens`` and
    ``compressed_tokens`` (integers in the method's own unit: reader tokens for text,
    latent rows for latent prompts, visual tokens for pruners) and ``notes`` (every
    decision the caller should know about: fallbacks, dropped inputs, ignored options).
    """

    compressor: str
    config_hash: str
    budget: Budget
    original_tokens: int
    compressed_tokens: int
    notes: tuple[str, ...]

    @property
    def ratio(self) -> float:
        """Compressed / original size (1.0 when the input was empty)."""
        if not self.original_tokens:
            return 1.0
        return self.compressed_tokens / self.original_tokens

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (arrays and tensors as shapes or lists)."""
