"""DivPrune: keep the most diverse subset (max-min diversity, greedy).

Tokens are compared by cosine distance in the similarity space (the encoder's keys when
given, else the features). The first token kept is the one farthest from its nearest
neighbour; each next one is the token whose distance to the closest already-kept token is
largest. One ``(N, N)`` distance matrix, then ``k`` vectorised steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..pruner import VisualTokenPruner, keep_indices
from ..tokens import VisualTokens


class DivPrune(VisualTokenPruner):
    """Greedy max-min diverse subset of ``k`` tokens (cosine distance)."""

    name: ClassVar[str] = "divprune"

    def method_config(self) -> dict[str, Any]:
        return {}

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        kept = max_min_subset(tokens.metric, k)
        return keep_indices(kept, tokens.n), None


def max_min_subset(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (in selection order) of a greedy max-min diverse subset of ``k`` rows."""
    n = x.shape[0]
    xf = torch.nn.functional.normalize(x.float(), dim=-1)
    dist = (1.0 - xf @ xf.T).clamp_min_(0.0)
    chosen = torch.empty(k, dtype=torch.long)
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    # the most isolated token: largest distance to its nearest other token
    nn = dist + torch.diag(torch.full((n,), float("inf")))
    first = int(torch.argmax(nn.min(dim=1).values))
    chosen[0] = first
    mind = dist[first].clone()
    mind[first] = -1.0
    for i in range(1, k):
        j = int(torch.argmax(mind))
        chosen[i] = j
        mind = torch.minimum(mind, dist[j])
        mind[j] = -1.0  # chosen tokens stay at -1: min(-1, d) = -1
    return chosen
