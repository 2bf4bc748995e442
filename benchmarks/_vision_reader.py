"""The fidelity benchmarks' reader: the last blocks of a ViT reading reduced visual tokens.

The encoder's first ``cut`` blocks produce the visual tokens; its remaining blocks plus the
final norm read them, the way a language model reads a VLM's image tokens. The reader runs
on [CLS] + the reduced tokens of a batch of pictures (rows padded with size-0 tokens, which
attention ignores) and returns, per picture, the final [CLS] and the (size-weighted) mean
of the final patch tokens.

Merged tokens (pooling, ToMe, ``recycle="merge"``) stand for several patches: with
``prop=True`` each weighs by its size in attention (a ``log size`` bias, ToMe's
proportional attention); ``prop=False`` reads them as plain tokens, as a language model
that is given only the averaged features does.
"""

from __future__ import annotations

from typing import Any

import torch

from ctxcomp.budget import Budget
from ctxcomp.core import Request
from ctxcomp.vision.hf.patch import first_token_attention
from ctxcomp.vision.merge import size_bias
from ctxcomp.vision.pruner import VisualTokenPruner
from ctxcomp.vision.tokens import LLM_ATTENTION, VisualTokens

Row = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # (cls, tokens, sizes or None)


class Reader:
    """Blocks ``cut..`` of a transformers ``Dinov2Model`` + its final norm."""

    def __init__(self, model: Any, cut: int) -> None:
        self.blocks = model.encoder.layer[cut:]
        self.norm = model.layernorm
        self.heads = model.config.num_attention_heads

    @torch.inference_mode()
    def __call__(
        self,
        rows: list[Row],
        *,
        prop: bool = True,
        fastv: tuple[VisualTokenPruner, int] | None = None,
        chunk: int = 32,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Final ([CLS], pooled patch) outputs per row. ``fastv=(pruner, k)``: the first
        reader block sees every token; ``pruner`` (a FastV, maybe with recycling) reduces
        each picture to ``k`` tokens from that block's [CLS] attention for the later blocks
        (FastV with K = 1)."""
        out: list[tuple[torch.Tensor, torch.Tensor]] = []
        for s in range(0, len(rows), chunk):
            out.extend(self._run(rows[s : s + chunk], prop, fastv))
        return out

    def _run(
        self, rows: list[Row], prop: bool, fastv: tuple[VisualTokenPruner, int] | None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        t = 1 + max(len(toks) for _, toks, _ in rows)
        d = rows[0][0].shape[-1]
        x = torch.zeros(len(rows), t, d)
        size = torch.zeros(len(rows), t)
        for b, (cls, toks, sizes) in enumerate(rows):
            x[b, 0], x[b, 1 : 1 + len(toks)] = cls, toks
            size[b, 0] = 1.0
            size[b, 1 : 1 + len(toks)] = sizes.float() if sizes is not None else 1.0
        for i, blk in enumerate(self.blocks):
            weigh = size if prop else (size > 0).float()
            bias = size_bias(weigh, x.dtype) if bool((weigh != 1).any()) else None
            if fastv is not None and i == 0:
                with first_token_attention([blk], self.heads) as att:
                    x = blk(x, bias)
                x, size = _fastv_cut(x, size, att[0], *fastv)
                continue
            x = blk(x, bias)
        y = self.norm(x)
        w = size[:, 1:, None]
        pooled = (y[:, 1:] * w).sum(1) / w.sum(1)
        return [(y[b, 0], pooled[b]) for b in range(y.shape[0])]


def _fastv_cut(
    x: torch.Tensor, size: torch.Tensor, att: torch.Tensor, pruner: VisualTokenPruner, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row reduced to [CLS] + ``k`` tokens by ``pruner`` ranking the attention the
    [CLS] paid them (recycled tokens become size-weighted means)."""
    if bool((size[:, 1:] != 1).any()):
        raise ValueError("FastV in the reader expects unmerged, unpadded tokens")
    xs, sizes = [], []
    for b in range(x.shape[0]):
        tok = VisualTokens(features=x[b, 1:].float(), signals={LLM_ATTENTION: att[b, 1:]})
        r = pruner.prune(tok, Request((tok,), Budget(target_tokens=k)))
        xs.append(torch.cat([x[b, :1], r.features.to(x.dtype)]))
        sizes.append(torch.cat([size[b, :1], torch.as_tensor(r.sizes, dtype=size.dtype)]))
    return torch.stack(xs), torch.stack(sizes)
