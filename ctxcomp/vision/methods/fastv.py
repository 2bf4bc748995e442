"""FastV: keep the visual tokens an LLM layer attended to most.

After layer ``K`` (2 in the paper) of the language model, the image tokens that received
the least attention (averaged over heads, from the last prompt token) are dropped for the
remaining layers. The scores come from the LLM itself: :mod:`ctxcomp.vision.hf.fastv`
records them with hooks while the model runs and calls this method with them as the
``llm_attention`` signal; any other reader can supply the signal the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...errors import InputError
from ..pruner import VisualTokenPruner, keep_top
from ..tokens import LLM_ATTENTION, VisualTokens


class FastV(VisualTokenPruner):
    """Top-``k`` tokens by the attention they received in LLM layer ``layer - 1``.

    ``layer`` is where pruning happens (layers before it see every token); ``query`` is
    ``"last"`` (the last prompt token's attention, as in the reference code) or ``"all"``
    (mean over every query after the image). Both are used by the LLM hooks.
    """

    name: ClassVar[str] = "fastv"
    needs: ClassVar[tuple[str, ...]] = (LLM_ATTENTION,)

    def __init__(self, layer: int = 2, query: str = "last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 1:
            raise InputError(f"fastv layer must be an integer >= 1, got {layer!r}")
        if query not in ("last", "all"):
            raise InputError(f"fastv query must be 'last' or 'all', got {query!r}")
        self.layer = layer
        self.query = query

    def method_config(self) -> dict[str, Any]:
        return {"layer": self.layer, "query": self.query}

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = tokens.signal(
            LLM_ATTENTION,
            "fastv",
            "FastV ranks by an LLM layer's attention; run it inside a model with "
            "ctxcomp.vision.hf.PrunedVLM(model, 'fastv'), or supply the scores",
        )
        return keep_top(s, k), s
