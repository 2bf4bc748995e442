"""Bipartite soft matching (ToMe) with token sizes, per-image merge counts and padding.

One merge step: the unprotected tokens are split alternately into sets A and B; every A
token finds its most similar B token (cosine of the metric, usually the attention keys);
the ``r`` best-matched A tokens are folded into their B partners as size-weighted means.
Unlike the reference, every image of a batch may merge a different number of tokens (DyMU's
thresholds make the count depend on the image): shorter rows are padded with tokens of
size 0, which attention ignores (``log 0 = -inf`` in :func:`size_bias`) and merging skips.
Survivors keep their order, so [CLS] stays first and tokens stay in raster order.

A :class:`MergeState` follows the tokens: each row's size (0 = padding) and, for every
original token, the row it now lives in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MergeState:
    """Token sizes ``(B, T)`` (0 marks padding) and the current row of every original
    token ``(B, N0)``; ``protect`` leading tokens ([CLS], registers) are never merged."""

    size: torch.Tensor
    assign: torch.Tensor
    protect: int

    @classmethod
    def start(cls, batch: int, tokens: int, protect: int, device: torch.device) -> MergeState:
        return cls(
            size=torch.ones(batch, tokens, device=device),
            assign=torch.arange(tokens, device=device).expand(batch, tokens).clone(),
            protect=protect,
        )

    @property
    def merged(self) -> bool:
        """True once any row stands for more than one token (or is padding)."""
        return bool((self.size != 1).any())


@dataclass
class Matching:
    """Best B partner of every A token: ``score`` (-inf where the token cannot merge) and
    the partner's position; ``a``/``b`` are the positions of the two sets."""

    a: torch.Tensor
    b: torch.Tensor
    score: torch.Tensor
    partner: torch.Tensor


def match(metric: torch.Tensor, state: MergeState) -> Matching | None:
    """Cosine-similarity matching of A (even unprotected positions) to B (odd ones)."""
    t = metric.shape[1]
    u = torch.arange(state.protect, t, device=metric.device)
    a, b = u[0::2], u[1::2]
    if b.numel() == 0:
        return None
    m = torch.nn.functional.normalize(metric.float(), dim=-1)
    scores = m[:, a] @ m[:, b].transpose(1, 2)
    scores.masked_fill_(~(state.size[:, b] > 0)[:, None, :], -torch.inf)
    best, idx = scores.max(dim=-1)
    best = best.masked_fill(~(state.size[:, a] > 0), -torch.inf)
    return Matching(a=a, b=b, score=best, partner=b[idx])


def counts(m: Matching, r: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """Merges per image: ``r`` (a ``(B,)`` tensor), raised to the number of pairs more
    similar than ``threshold`` when one is given, capped by the pairs available."""
    avail = torch.isfinite(m.score).sum(-1)
    n = r.to(avail.device).long()
    if threshold is not None:
        n = torch.maximum(n, (m.score > threshold).sum(-1))
    return torch.minimum(n, avail)


def batch_threshold(m: Matching, total: int) -> tuple[torch.Tensor, float]:
    """DyMU calibration: merge the ``total`` best pairs of the whole batch; return the
    merges per image and the similarity of the best pair left unmerged (>= 0), which is
    the layer's threshold for this batch."""
    flat = m.score.flatten()
    live = torch.isfinite(flat)
    total = min(total, int(live.sum()))
    order = torch.sort(flat.masked_fill(~live, -torch.inf), descending=True, stable=True).indices
    chosen = torch.zeros_like(live)
    chosen[order[:total]] = True
    nxt = float(flat[order[total]]) if total < int(live.sum()) else 0.0
    return chosen.view_as(m.score).sum(-1), max(nxt, 0.0)


def merge(
    x: torch.Tensor, m: Matching, n: torch.Tensor, state: MergeState
) -> tuple[torch.Tensor, MergeState]:
    """Fold the ``n[i]`` best-matched A tokens of image ``i`` into their partners.

    Returns the new hidden states ``(B, T', C)`` (``T'`` the longest row; shorter rows
    padded with size-0 zeros) and the new state."""
    bsz, t, c = x.shape
    dev = x.device
    order = torch.sort(m.score, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=dev).expand_as(order))
    go = rank < n[:, None].to(dev)  # (B, A): this A token merges
    src = torch.zeros(bsz, t, dtype=torch.bool, device=dev)
    src[:, m.a] = go
    survive = (state.size > 0) & ~src
    pos = survive.long().cumsum(-1) - 1
    target = torch.where(survive, pos, torch.full_like(pos, -1))
    target[:, m.a] = torch.where(go, pos.gather(1, m.partner), target[:, m.a])
    t_new = int(survive.sum(-1).max())
    slot = torch.where(target >= 0, target, torch.full_like(target, t_new))  # t_new: bin
    size = torch.zeros(bsz, t_new + 1, device=dev).scatter_add_(1, slot, state.size)
    acc = torch.zeros(bsz, t_new + 1, c, device=dev, dtype=torch.float32)
    acc.scatter_add_(1, slot[..., None].expand(-1, -1, c), x.float() * state.size[..., None])
    size = size[:, :t_new]
    out = (acc[:, :t_new] / size.clamp_min(1e-6)[..., None]).to(x.dtype)
    assign = target.gather(1, state.assign)
    return out, MergeState(size=size, assign=assign, protect=state.protect)


def size_bias(size: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias ``log(size)`` over keys, ``(B, 1, 1, T)``: a merged token
    counts as many as it stands for (proportional attention); padding (size 0) as none."""
    bias = torch.where(size > 0, size.clamp_min(1e-6).log(), torch.full_like(size, -torch.inf))
    return bias[:, None, None, :].to(dtype)


def schedule(tokens: int, keep: int, layers: int) -> list[int]:
    """Merges per layer taking ``tokens`` mergeable tokens down to ``keep`` over ``layers``
    layers, spread evenly (ToMe's constant ``r``), never more than half a layer's tokens;
    a layer merges more than the even share when the layers after it could not reach
    ``keep`` otherwise (each can at most halve). The total falls short only when
    ``keep < tokens / 2**layers``."""
    out: list[int] = []
    left = max(0, tokens - keep)
    cur = tokens
    for i in range(layers):
        rest = layers - i - 1  # layers after this one
        need = cur - keep * 2**rest  # merges here so that `rest` halvings can finish
        r = min(max(-(-left // (layers - i)), need), cur // 2) if left else 0
        out.append(r)
        left -= r
        cur -= r
    return out
