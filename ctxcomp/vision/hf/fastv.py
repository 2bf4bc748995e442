"""FastV inside a Hugging Face decoder: score image tokens at layer ``K-1``, drop them from
layer ``K`` on, with ``generate()`` and the KV cache kept consistent.

Forward pre-hooks only (the model's code is not copied or replaced):

- layer ``K-1``'s attention: from its input, the query/key projections and the rotary
  embedding the model passes in, compute the attention the chosen queries (the last
  token, or every token after the image) pay to each position — averaged over heads —
  and let :class:`~ctxcomp.vision.methods.fastv.FastV` choose each image's kept tokens;
- layer ``K``: gather the kept positions of the hidden states; layers ``>= K``: gather the
  same positions of the rotary embedding, position ids and attention mask, so kept
  tokens keep their original positions (as in FastV).

Layers ``< K`` cache every token, layers ``>= K`` only the kept ones; at each decoding
step the attention mask of layers ``>= K`` is cut to the kept prompt positions plus the
generated ones. Rows of a batch must keep the same number of tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ...budget import Budget
from ...core import Request
from ...errors import InputError
from ..methods.fastv import FastV
from ..result import VisualResult
from ..tokens import LLM_ATTENTION, VisualTokens


class FastVHooks:
    """Installed for one ``forward``/``generate`` call (a context manager)."""

    def __init__(
        self,
        language_model: nn.Module,
        pruner: FastV,
        budget: Budget,
        slots: Sequence[tuple[int, int, int]],
        attention_mask: torch.Tensor,
        on_results: Callable[[Sequence[VisualResult]], None] | None = None,
    ) -> None:
        if pruner.recycle != "none":
            raise InputError(
                "fastv inside a language model drops tokens from its KV cache and cannot "
                "recycle them (merged tokens would need size-weighted attention in every "
                "later layer): use recycle='none', or a post-projector method with recycling"
            )
        layers = getattr(language_model, "layers", None)
        if not isinstance(layers, nn.ModuleList):
            raise InputError(f"{type(language_model).__name__} has no decoder layers to hook")
        if pruner.layer >= len(layers):
            raise InputError(
                f"fastv layer {pruner.layer} must be below the {len(layers)} LLM layers"
            )
        attn = getattr(layers[pruner.layer - 1], "self_attn", None)
        if attn is None or not all(hasattr(attn, a) for a in ("q_proj", "k_proj", "head_dim")):
            raise InputError(
                "fastv reads q_proj/k_proj of the decoder's self_attn: unsupported model"
            )
        self.pruner = pruner
        self.budget = budget
        self.slots = list(slots)
        self.mask2d = attention_mask
        self.on_results = on_results
        self.keep: torch.Tensor | None = None  # (B, S') kept positions of the last prefill
        self.length = 0  # S: the prefill's length
        self.handles = [attn.register_forward_pre_hook(self._score, with_kwargs=True)]
        for layer in layers[pruner.layer :]:
            self.handles.append(layer.register_forward_pre_hook(self._cut, with_kwargs=True))
        self.first = layers[pruner.layer]

    def __enter__(self) -> FastVHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    # -- layer K-1: scores and selection ------------------------------------------------

    def _score(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        h = args[0] if args else kwargs["hidden_states"]
        if h.shape[1] == 1:
            return None  # a decoding step: the selection stands
        pe = kwargs.get("position_embeddings")
        if pe is None:
            raise InputError("fastv needs a decoder that passes position_embeddings to attention")
        scores = self._attention(module, h, pe)
        self.length = h.shape[1]
        self.keep, results = self._select(h, scores)
        if self.on_results is not None:
            self.on_results(results)
        return None

    def _attention(
        self, attn: Any, h: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Mean attention over heads (and the chosen queries) paid to every position."""
        bsz, s, _ = h.shape
        hd = attn.head_dim
        vis_end = max((st + n for _b, st, n in self.slots), default=0)
        qpos = (
            torch.arange(s - 1, s)
            if self.pruner.query == "last"
            else torch.arange(min(vis_end, s - 1), s)
        )
        q = attn.q_proj(h[:, qpos]).view(bsz, qpos.numel(), -1, hd)
        k = attn.k_proj(h).view(bsz, s, -1, hd)
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = q.transpose(1, 2).float(), k.transpose(1, 2).float()
        cos, sin = (t.float().unsqueeze(1) for t in pe)
        q = q * cos[:, :, qpos] + _rotate_half(q) * sin[:, :, qpos]
        k = k * cos + _rotate_half(k) * sin
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        logits = (q @ k.transpose(-1, -2)) * float(getattr(attn, "scaling", hd**-0.5))
        allowed = torch.arange(s)[None, :] <= qpos[:, None]  # causal
        pad = self.mask2d.to(torch.bool).cpu()
        if pad.shape[1] < s:  # generated tokens past the prompt are real
            pad = torch.cat([pad, torch.ones(bsz, s - pad.shape[1], dtype=torch.bool)], dim=1)
        allowed = allowed[None, None] & pad[:, None, None, :s]
        logits = logits.masked_fill(~allowed.to(logits.device), -torch.inf)
        return logits.softmax(dim=-1).mean(dim=(1, 2)).cpu()

    def _select(
        self, h: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, list[VisualResult]]:
        bsz, s, _ = h.shape
        drop = torch.zeros(bsz, s, dtype=torch.bool)
        results: list[VisualResult] = []
        for b, st, n in self.slots:
            tok = VisualTokens(
                features=h[b, st : st + n].detach().float().cpu(),
                signals={LLM_ATTENTION: scores[b, st : st + n]},
            )
            r = self.pruner.prune(tok, Request((tok,), self.budget))
            results.append(r)
            drop[b, st + torch.as_tensor(r.dropped, dtype=torch.long)] = True
        counts = (~drop).sum(-1)
        if bool((counts != counts[0]).any()):
            raise InputError(
                "fastv keeps the same number of tokens in every row of a batch; these rows "
                f"would keep {counts.tolist()} (give rows the same images, or one row at a time)"
            )
        keep = torch.stack([torch.nonzero(~drop[b]).flatten() for b in range(bsz)])
        return keep, results

    # -- layers >= K: gather kept positions -------------------------------------------

    def _cut(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        if self.keep is None:
            return None
        keep = self.keep.to(_device(args, kwargs))
        pe = kwargs.get("position_embeddings")
        q_len = pe[0].shape[1] if pe is not None else None
        kw = dict(kwargs)
        if q_len == self.length:  # the prefill
            if module is self.first:
                h = args[0] if args else kwargs["hidden_states"]
                h = _take(h, keep, 1)
                if args:
                    args = (h, *args[1:])
                else:
                    kw["hidden_states"] = h
            kw["position_embeddings"] = tuple(_take(t, keep, 1) for t in pe)  # type: ignore[union-attr]
            if isinstance(kw.get("position_ids"), torch.Tensor):
                kw["position_ids"] = _take(kw["position_ids"], keep, kw["position_ids"].dim() - 1)
            m = kw.get("attention_mask")
            if isinstance(m, torch.Tensor) and m.dim() == 4:
                kw["attention_mask"] = _take(_take(m, keep, 2), keep, 3)
            return args, kw
        m = kw.get("attention_mask")
        if isinstance(m, torch.Tensor) and m.dim() == 4:  # decoding: cut the cached prompt
            extra = torch.arange(self.length, m.shape[-1], device=keep.device)
            kv = torch.cat([keep, extra.expand(keep.shape[0], -1)], dim=1)
            kw["attention_mask"] = _take(m, kv, 3)
            return args, kw
        return None


def _take(x: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """Gather ``idx`` (``(B, S')``, per batch row) along ``dim`` of ``x`` (batch first; a
    size-1 batch dimension broadcasts)."""
    if x.shape[0] == 1 and idx.shape[0] > 1:
        x = x.expand(idx.shape[0], *x.shape[1:])
    shape = [idx.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = idx.shape[1]
    index = idx.view(shape).expand(
        *[x.shape[d] if d != dim else idx.shape[1] for d in range(x.dim())]
    )
    return torch.gather(x, dim, index)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def _device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.device:
    h = args[0] if args else kwargs["hidden_states"]
    return h.device
