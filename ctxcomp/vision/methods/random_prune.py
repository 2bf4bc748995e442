"""Random pruning: keep ``k`` tokens drawn uniformly, seeded (a strong baseline to beat)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..pruner import VisualTokenPruner, keep_indices
from ..tokens import VisualTokens


class RandomPruner(VisualTokenPruner):
    """Keeps ``k`` tokens chosen uniformly at random. The draw depends only on ``seed`` and
    the token count, so the same input gives the same output."""

    name: ClassVar[str] = "random"

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = int(seed)

    def method_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        g = torch.Generator().manual_seed(self.seed)
        return keep_indices(torch.randperm(tokens.n, generator=g)[:k], tokens.n), None
