"""The budget value object: exactly one of a ratio or a token target."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import BudgetError


@dataclass(frozen=True)
class Budget:
    """How much of the context to keep, counted in the reader's tokens.

    Exactly one of ``ratio`` (the fraction of the original tokens to keep, in (0, 1]) or
    ``target_tokens`` (a positive integer) is set.
    """

    ratio: float | None = None
    target_tokens: int | None = None

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.target_tokens is None):
            raise BudgetError(
                "give exactly one of ratio=... or target_tokens=... "
                f"(got ratio={self.ratio!r}, target_tokens={self.target_tokens!r})"
            )
        # numpy (and other numbers.Real / numbers.Integral) scalars are accepted and stored
        # as plain Python numbers; bools and non-finite values are refused
        if self.ratio is not None:
            r = self.ratio
            if _is_bool(r) or not isinstance(r, numbers.Real):
                raise BudgetError(f"ratio must be a number in (0, 1], got {r!r}")
            r = float(r)
            if not math.isfinite(r) or not 0.0 < r <= 1.0:
                raise BudgetError(f"ratio must be in (0, 1], got {self.ratio!r}")
            object.__setattr__(self, "ratio", r)
        if self.target_tokens is not None:
            t = self.target_tokens
            if _is_bool(t) or not isinstance(t, numbers.Integral):
                raise BudgetError(f"target_tokens must be a positive integer, got {t!r}")
            if int(t) <= 0:
                raise BudgetError(f"target_tokens must be positive, got {t!r}")
            object.__setattr__(self, "target_tokens", int(t))

    @classmethod
    def of(
        cls,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
    ) -> Budget:
        """Build a budget from keyword arguments, accepting an existing ``Budget`` too."""
        if budget is not None:
            if ratio is not None or target_tokens is not None:
                raise BudgetError("give either budget=... or ratio/target_tokens, not both")
            if not isinstance(budget, Budget):
                raise BudgetError(f"budget must be a ctxcomp.Budget, got {type(budget).__name__}")
            return budget
        return cls(ratio=ratio, target_tokens=target_tokens)

    def resolve(self, original_tokens: int) -> int:
        """The token target for a context of ``original_tokens`` reader tokens."""
        if self.target_tokens is not None:
            return self.target_tokens
        assert self.ratio is not None
        return max(1, math.floor(self.ratio * original_tokens))

    def __str__(self) -> str:
        if self.ratio is not None:
            return f"ratio={self.ratio:g}"
        return f"target_tokens={self.target_tokens}"


def _is_bool(x: object) -> bool:
    """``True``/``False`` and numpy's ``bool_`` (not a ``bool`` subclass)."""
    return isinstance(x, bool) or type(x).__name__ in ("bool_", "bool")
