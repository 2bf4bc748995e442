"""Uniform pooling: average the token grid over equal cells (a baseline to beat).

The grid (``(H, W)`` or ``(T, H, W)``) is cut into ``c_1 x c_2 [x c_3] <= k`` cells whose
shape follows the grid's (no dimension pooled more than twice as hard as another when that
is possible) and each cell's tokens are averaged into one. Tokens with no grid are pooled
in contiguous runs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import torch

from ..pruner import VisualTokenPruner
from ..tokens import VisualTokens


class UniformPooling(VisualTokenPruner):
    """Average pooling to at most ``k`` cells over the token grid."""

    name: ClassVar[str] = "pooling"
    drops: ClassVar[bool] = False

    def method_config(self) -> dict[str, Any]:
        return {}

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        grid = tokens.grid or (tokens.n,)
        cells = pool_shape(grid, k)
        coords = torch.meshgrid(*[torch.arange(s) for s in grid], indexing="ij")
        cell = torch.zeros(grid, dtype=torch.long)
        for d, (s, c) in enumerate(zip(grid, cells)):
            cell = cell * c + (coords[d] * c) // s
        return cell.reshape(-1), None


def pool_shape(grid: tuple[int, ...], k: int) -> tuple[int, ...]:
    """Cells per dimension: the largest product ``<= k``, shaped most like the grid."""
    best: tuple[tuple[bool, int, float], tuple[int, ...]] | None = None
    for head in itertools.product(*[range(1, s + 1) for s in grid[:-1]]):
        rest = k // math.prod(head)
        if rest < 1:
            continue
        cells = (*head, min(grid[-1], rest))
        factors = [math.log(s / c) for s, c in zip(grid, cells)]
        spread = max(factors) - min(factors)
        key = (spread <= math.log(2) + 1e-9, math.prod(cells), -spread)
        if best is None or key > best[0]:
            best = (key, cells)
    assert best is not None
    return best[1]
