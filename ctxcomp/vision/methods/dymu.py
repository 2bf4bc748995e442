"""DyMU: ToMe with per-block similarity thresholds, so the token count follows the image.

Thresholds are found once on a batch of pictures (:meth:`DyMU.calibrate`): at each block
the ``r x batch`` most similar pairs of the whole batch are merged, and the similarity at
that cut is the block's threshold (averaged over batches). Afterwards each image merges
every pair above the threshold: simple pictures shrink more than busy ones, and pictures
like the calibration set keep the calibrated ratio *on average* — one picture may keep
more tokens than that, another fewer. With ``cap=True`` the request's budget is also an
upper bound for every picture (each block merges at least ToMe's even share as well), so
the mean falls below the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import InputError
from ..merge import schedule
from .tome import ToMe

if TYPE_CHECKING:
    from ..hf.encoders import VisionEncoder


class DyMU(ToMe):
    """Threshold-driven merging inside the encoder (see :meth:`calibrate`)."""

    name: ClassVar[str] = "dymu"

    def __init__(
        self,
        encoder: VisionEncoder | None = None,
        *,
        thresholds: Sequence[float],
        prop_attn: bool = True,
        cap: bool = False,
    ) -> None:
        super().__init__(encoder, prop_attn=prop_attn)
        th = [float(t) for t in thresholds]
        if not th or any(not -1.0 <= t <= 1.0 for t in th):
            raise InputError("DyMU thresholds are cosine similarities in [-1, 1], one per block")
        if encoder is not None and len(th) != encoder.depth:
            raise InputError(
                f"{len(th)} thresholds for an encoder with {encoder.depth} blocks before its "
                "feature layer"
            )
        self.thresholds = th
        self.cap = bool(cap)

    def method_config(self) -> dict[str, Any]:
        return {
            "prop_attn": self.prop_attn,
            "thresholds": [round(t, 6) for t in self.thresholds],
            **({"cap": True} if self.cap else {}),
        }

    def plan(self, n: int, k: int, depth: int) -> tuple[list[int], list[float] | None]:
        floor = schedule(n, min(k, n), depth) if self.cap and k < n else [0] * depth
        return floor, self.thresholds

    def count_note(self, got: int, k: int, depth: int) -> str | None:
        if self.cap or got <= k:
            return super().count_note(got, k, depth)
        return (
            f"{got} tokens (budget {k}): DyMU's thresholds set each picture's count, the "
            "calibrated ratio holds on average; cap=True makes the budget an upper bound"
        )

    @classmethod
    def calibrate(
        cls,
        encoder: VisionEncoder,
        images: Sequence[Any],
        ratio: float,
        *,
        prop_attn: bool = True,
        cap: bool = False,
    ) -> DyMU:
        """Find thresholds that keep ``ratio`` of the tokens on average over ``images``
        (batches of ``encoder.batch_size``; larger batches adapt more across images)."""
        if not 0.0 < ratio <= 1.0:
            raise InputError(f"ratio must be in (0, 1], got {ratio!r}")
        if not images:
            raise InputError("DyMU calibration needs at least one picture")
        n = encoder.n_tokens()
        sched = schedule(n, max(1, int(ratio * n)), encoder.depth)
        _, observed = encoder.merged(list(images), sched, calibrate=True, prop_attn=prop_attn)
        thresholds = [observed[i] if r > 0 else 1.0 for i, r in enumerate(sched)]
        return cls(encoder, thresholds=thresholds, prop_attn=prop_attn, cap=cap)
