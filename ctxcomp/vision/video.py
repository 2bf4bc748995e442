"""Video: frames read as a batch of images, then near-identical tokens merged across time.

Consecutive frames repeat most of their content (a static background, a slow camera), so
the token at grid cell ``(h, w)`` of frame ``t`` often says what the same cell of frame
``t-1`` said. :class:`TemporalMerging` folds such tokens into one (a run over time per
cell, like HoliTom's temporal merging): the most similar neighbouring pairs first, while
their cosine similarity is at least ``threshold`` and the budget is not met. If the
static content alone cannot reach the budget, a spatial method (DivPrune by default)
picks among the merged tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ..errors import InputError
from .pruner import VisualTokenPruner, canonical
from .result import reduce_rows
from .tokens import VisualTokens


class TemporalMerging(VisualTokenPruner):
    """Merge static tokens over time, then prune spatially to the budget. Needs tokens on
    a ``(T, H, W)`` grid (:meth:`VisualTokens.video`, or :func:`encode_video`)."""

    name: ClassVar[str] = "temporal"

    def __init__(
        self,
        threshold: float = 0.8,
        spatial: VisualTokenPruner | str = "divprune",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not -1.0 <= float(threshold) <= 1.0:
            raise InputError(f"threshold is a cosine similarity in [-1, 1], got {threshold!r}")
        self.threshold = float(threshold)
        if isinstance(spatial, str):
            from ..core import compressors

            spatial = compressors.create(spatial)
        if not isinstance(spatial, VisualTokenPruner) or isinstance(spatial, TemporalMerging):
            raise InputError("spatial must be a (non-temporal) visual-token pruner")
        self.spatial = spatial

    def method_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "spatial": self.spatial.config_hash}

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if tokens.grid is None or len(tokens.grid) != 3:
            raise InputError(
                "temporal merging needs tokens on a (frames, height, width) grid: build them "
                "with VisualTokens.video(frames) or ctxcomp.vision.video.encode_video"
            )
        t, h, w = tokens.grid
        x = torch.nn.functional.normalize(tokens.metric.float(), dim=-1).view(t, h * w, -1)
        sim = (x[1:] * x[:-1]).sum(-1)  # (T-1, HW): frame t+1 vs frame t, same cell
        order = torch.sort(sim.flatten(), descending=True, stable=True).indices
        n_merge = min(tokens.n - k, int((sim.flatten() >= self.threshold).sum()))
        joined = torch.zeros(t, h * w, dtype=torch.bool)  # token joins the previous frame's run
        joined[1:].view(-1)[order[:n_merge]] = True
        run = (~joined).long().cumsum(0) - 1  # run index per cell
        starts = (~joined).sum(0)  # runs per cell
        base = torch.cumsum(starts, 0) - starts
        groups = (base[None, :] + run).view(-1)  # one id per (cell, run)
        n_groups = int(starts.sum())
        if n_groups <= k:
            return groups, None
        sub = canonical(groups)  # merged rows in order of their first token
        keep, _ = self.spatial.assign(
            VisualTokens(features=reduce_rows(tokens.features, sub, n_groups)), k
        )
        return keep[sub], None


def encode_video(encoder: Any, frames: Sequence[Any]) -> VisualTokens:
    """Read ``frames`` with a :class:`~ctxcomp.vision.hf.VisionEncoder` as one batch and
    stack their tokens on a ``(T, H, W)`` grid."""
    if len(frames) < 2:
        raise InputError("a video needs at least two frames")
    per = encoder.encode(list(frames))
    feats = torch.stack([p.features for p in per])
    return VisualTokens.video(feats, grid=per[0].grid)
