"""The one result type of every visual pruner: which tokens survive, and what each stands for.

Pruning methods keep some tokens and drop the rest; merging methods fold groups of tokens
into one. Both are the same thing seen from the input side: every input token is assigned
to an output row, or to none (dropped). From that one array follow the kept indices, the
merge sizes, the pooled features and the positions of the output tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..budget import Budget
from ..core.result import Result
from ..errors import InputError


@dataclass(frozen=True, eq=False)
class VisualResult(Result):
    """Visual tokens after pruning/merging.

    ``assignment[i]`` is the output row input token ``i`` went into, ``-1`` if dropped.
    Output rows are ordered by their first input token, so ``kept`` (the first input token
    of each row) is sorted. ``sizes[j]`` counts the input tokens in row ``j``: 1 for a
    kept token, more for a merged group; ``sizes.sum() + len(dropped) == original_tokens``.
    ``features`` are the output tokens (``(k, D)``): kept tokens as they were, merged
    groups as their size-weighted mean (or, for merging inside an encoder, the encoder's
    own merged tokens). ``cls`` is the encoder's [CLS] output when the method changed it.
    ``scores`` are the per-token scores the method ranked by, when it ranks.
    """

    assignment: np.ndarray
    features: torch.Tensor
    compressor: str
    config_hash: str
    budget: Budget
    grid: tuple[int, ...] | None = None
    cls: torch.Tensor | None = None
    scores: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        a = np.asarray(self.assignment, dtype=np.int64)
        k = int(self.features.shape[0])
        if a.ndim != 1 or (a.size and (a.min() < -1 or a.max() >= k)):
            raise InputError("assignment must map every token to an output row or -1")
        if k and len(np.unique(a[a >= 0])) != k:
            raise InputError("every output row must receive at least one input token")
        first = _first_index(a, k)
        if k and not np.all(np.diff(first) > 0):
            raise InputError("output rows must be ordered by their first input token")
        object.__setattr__(self, "assignment", a)

    # -- Result fields -------------------------------------------------------------

    @property
    def original_tokens(self) -> int:  # type: ignore[override]
        return int(self.assignment.size)

    @property
    def compressed_tokens(self) -> int:  # type: ignore[override]
        return int(self.features.shape[0])

    # -- derived views -------------------------------------------------------------

    @property
    def kept(self) -> np.ndarray:
        """Sorted index of the first input token of every output row."""
        return _first_index(self.assignment, self.compressed_tokens)

    @property
    def sizes(self) -> np.ndarray:
        """How many input tokens each output row stands for."""
        a = self.assignment
        return np.bincount(a[a >= 0], minlength=self.compressed_tokens).astype(np.int64)

    @property
    def dropped(self) -> np.ndarray:
        """Sorted indices of the input tokens no output row stands for."""
        return np.flatnonzero(self.assignment < 0)

    @property
    def merged(self) -> bool:
        """True when some output row stands for more than one input token."""
        return bool(self.compressed_tokens and self.sizes.max() > 1)

    def groups(self) -> list[np.ndarray]:
        """The input tokens of each output row, in row order."""
        a = self.assignment
        order = np.argsort(a, kind="stable")
        bounds = np.searchsorted(a[order], np.arange(self.compressed_tokens + 1))
        return [order[bounds[j] : bounds[j + 1]] for j in range(self.compressed_tokens)]

    def positions(self) -> np.ndarray:
        """Grid coordinates (``(k, len(grid))``) of every output row's first token."""
        if self.grid is None:
            return self.kept[:, None]
        return np.stack(np.unravel_index(self.kept, self.grid), axis=1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Reduce another per-token tensor (``(N, ...)``) the same way: rows of kept tokens,
        size-weighted means of merged groups. Used to carry a selection made on encoder
        features over to projected features, or to positions."""
        if x.shape[0] != self.original_tokens:
            raise InputError(
                f"apply() needs one row per input token ({self.original_tokens}), got {x.shape[0]}"
            )
        return reduce_rows(x, torch.as_tensor(self.assignment), self.compressed_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compressor": self.compressor,
            "config_hash": self.config_hash,
            "budget": {"ratio": self.budget.ratio, "target_tokens": self.budget.target_tokens},
            "original_tokens": self.original_tokens,
            "compressed_tokens": self.compressed_tokens,
            "ratio": self.ratio,
            "grid": list(self.grid) if self.grid is not None else None,
            "kept": self.kept.tolist(),
            "sizes": self.sizes.tolist(),
            "dropped": int(self.dropped.size),
            "merged": self.merged,
            "features_shape": list(self.features.shape),
            "notes": list(self.notes),
        }


def reduce_rows(x: torch.Tensor, assignment: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the rows of ``x`` assigned to each of ``k`` outputs (rows assigned -1 are
    dropped). Kept single rows are returned bit-for-bit."""
    a = assignment.to(x.device)
    live = a >= 0
    counts = torch.bincount(a[live], minlength=k)
    if bool((counts == 1).all()):
        out = torch.empty((k, *x.shape[1:]), dtype=x.dtype, device=x.device)
        out[a[live]] = x[live]
        return out
    acc = torch.zeros((k, *x.shape[1:]), dtype=torch.float64, device=x.device)
    acc.index_add_(0, a[live], x[live].double())
    shape = (k,) + (1,) * (x.dim() - 1)
    return (acc / counts.view(shape).double()).to(x.dtype)


def _first_index(a: np.ndarray, k: int) -> np.ndarray:
    first = np.full(k, a.size, dtype=np.int64)
    live = np.flatnonzero(a >= 0)
    np.minimum.at(first, a[live], live)
    return first
