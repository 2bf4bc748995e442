"""VTC-CLS: keep the patches the vision encoder's [CLS] token attends to most.

The [CLS] -> patch attention (averaged over heads) is summed over a range of encoder
layers; the ``k`` patches with the largest sum are kept. Needs an encoder with a [CLS]
token (CLIP, ViT, DINOv2 — not SigLIP or Qwen2-VL's encoder).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..pruner import VisualTokenPruner, keep_top
from ..tokens import CLS_ATTENTION, VisualTokens


class VTCCLS(VisualTokenPruner):
    """Top-``k`` patches by summed [CLS] attention (the ``cls_attention`` signal, which a
    :class:`~ctxcomp.vision.hf.VisionEncoder` records over its ``cls_layers``)."""

    name: ClassVar[str] = "vtc-cls"
    needs: ClassVar[tuple[str, ...]] = (CLS_ATTENTION,)

    def assign(self, tokens: VisualTokens, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = tokens.signal(
            CLS_ATTENTION,
            "vtc-cls",
            "VTC-CLS ranks patches by the encoder's [CLS] attention; encoders without a "
            "[CLS] token (SigLIP, Qwen2-VL) cannot provide it: use another method",
        )
        return keep_top(s, k), s

    def method_config(self) -> dict[str, Any]:
        return {}
