"""ToMe: merge similar tokens inside the vision encoder, block by block.

After every block before the feature layer, bipartite soft matching folds the ``r`` most
similar token pairs into size-weighted means (:mod:`ctxcomp.vision.merge`), and later
blocks weight each merged token's attention by its size (proportional attention). ``r`` is
spread evenly over the blocks from ``start`` (0: every block, as in the paper) to the
feature layer, so the feature layer holds exactly the budget. A later ``start`` leaves the
first blocks unmerged: the encoder saves less time, the tokens stay closer to the
unmerged ones. Merging happens while the encoder runs, so this method takes pictures and
needs an encoder.
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
    drops: ClassVar[bool] = False

    def __init__(
        self, encoder: VisionEncoder | None = None, *, prop_attn: bool = True, start: int = 0
    ) -> None:
        super().__init__(encoder)
        self.prop_attn = bool(prop_attn)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise InputError(f"tome start must be a block index >= 0, got {start!r}")
        if encoder is not None and start >= encoder.depth:
            raise InputError(
                f"tome start {start} leaves no block to merge in: the encoder has "
                f"{encoder.depth} blocks before its feature layer"
            )
        self.start = start

    def method_config(self) -> dict[str, Any]:
        return {"prop_attn": self.prop_attn, **({"start": self.start} if self.start else {})}

    def plan(self, n: int, k: int, depth: int) -> tuple[list[int], list[float] | None]:
        """Merges per block (and DyMU's thresholds) taking ``n`` patches to ``k``."""
        start = min(self.start, depth - 1)
        return [0] * start + schedule(n, min(k, n), depth - start), None

    def count_note(self, got: int, k: int, depth: int) -> str | None:
        """A note when a picture ends with more tokens than the budget."""
        if got <= k:
            return None
        return (
            f"{got} tokens left: merging at most half the tokens per block cannot reach {k} "
            f"in {depth - min(self.start, depth - 1)} blocks"
        )

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
                note = self.count_note(int(m.features.shape[0]), k, enc.depth)
                notes = [note] if note else []
                out[i] = self.result(
                    m.assignment, requests[i], notes, grid=m.grid, rows=m.features, cls=m.cls
                )
                if progress is not None:
                    progress(len(out), len(requests))
        return [out[i] for i in range(len(requests))]
