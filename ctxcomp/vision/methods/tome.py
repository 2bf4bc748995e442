"""ToMe: merge similar tokens inside the vision encoder, block by block.

After every block before the feature layer, bipartite soft matching folds the ``r`` most
similar token pairs into size-weighted means (:mod:`ctxcomp.vision.merge`), and later
blocks weight each merged token's attention by its size (proportional attention). ``r`` is
spread evenly over the blocks so the feature layer holds exactly the budget. Merging
happens while the encoder runs, so this method takes pictures and needs an encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ...core import ProgressCallback, Request
from ...errors import InputError
from ..merge import schedule
from ..pruner import VisualTokenPruner
from ..result import VisualResult
from ..tokens import VisualTokens

if TYPE_CHECKING:
    from ..hf.encoders import VisionEncoder


class ToMe(VisualTokenPruner):
    """Token merging inside a :class:`~ctxcomp.vision.hf.VisionEncoder` (ViT, CLIP,
    SigLIP, DINOv2) down to the budget at the encoder's feature layer."""

    name: ClassVar[str] = "tome"

    def __init__(self, encoder: VisionEncoder | None = None, *, prop_attn: bool = True) -> None:
        super().__init__(encoder)
        self.prop_attn = bool(prop_attn)

    def method_config(self) -> dict[str, Any]:
        return {"prop_attn": self.prop_attn}

    def plan(self, n: int, k: int, depth: int) -> tuple[list[int], list[float] | None]:
        """Merges per block (and DyMU's thresholds) taking ``n`` patches to ``k``."""
        return schedule(n, min(k, n), depth), None

    def inputs(self, prompt: Any) -> tuple[Any, ...]:
        if isinstance(prompt, VisualTokens) or (
            isinstance(prompt, torch.Tensor) and prompt.ndim == 2
        ):
            raise InputError(
                f"{self.name} merges tokens inside the vision encoder: give it pictures "
                "(paths, PIL images, arrays), not encoder outputs"
            )
        if self.encoder is None:
            raise InputError(
                f"{self.name} needs an encoder: {self.name}(encoder=VisionEncoder(...))"
            )
        return (prompt,)

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise InputError(f"{self.name} merges inside the encoder; it cannot reduce given tokens")

    def run(
        self, requests: Sequence[Request], *, progress: ProgressCallback | None = None
    ) -> list[VisualResult]:
        enc = self.encoder
        if enc is None:
            raise InputError(
                f"{self.name} needs an encoder: {self.name}(encoder=VisionEncoder(...))"
            )
        n = enc.n_tokens()
        by_k: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            by_k.setdefault(r.budget.resolve(n), []).append(i)
        out: dict[int, VisualResult] = {}
        for k, idx in by_k.items():
            sched, thr = self.plan(n, k, enc.depth)
            merged, _ = enc.merged(
                [requests[i].inputs[0] for i in idx], sched, thr, prop_attn=self.prop_attn
            )
            for i, m in zip(idx, merged):
                notes = []
                if m.features.shape[0] > k:
                    notes.append(
                        f"{m.features.shape[0]} tokens left: merging at most half the tokens "
                        f"per block cannot reach {k} in {enc.depth} blocks"
                    )
                out[i] = self.result(
                    m.assignment, requests[i], notes, grid=m.grid, rows=m.features, cls=m.cls
                )
                if progress is not None:
                    progress(len(out), len(requests))
        return [out[i] for i in range(len(requests))]
