"""Proportional attention inside a Hugging Face decoder: a merged visual token weighs as many
tokens as it stands for.

When visual tokens are merged (pooling, ToMe, or any pruner with ``recycle="merge"``), one
LLM position stands for ``s`` patches. ToMe's proportional attention adds ``log s`` to the
attention logits of that key, so softmax gives it the weight of ``s`` identical tokens.
:class:`SizeBias` does that with forward pre-hooks on every decoder layer's ``self_attn``
(no model code is copied): the layer's attention mask — or, when the model passes none
(SDPA's causal fast path), the causal mask it stands for — becomes an additive float mask
plus the bias over the prompt's key positions, for the prefill and every decoding step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import InputError


class SizeBias:
    """Hooks adding ``log(sizes)`` to every layer's attention over the prompt's keys;
    ``sizes`` is ``(B, L)``, one per prompt position (1 for text and unmerged tokens)."""

    def __init__(self, language_model: nn.Module, sizes: torch.Tensor) -> None:
        layers = getattr(language_model, "layers", None)
        if not isinstance(layers, nn.ModuleList):
            raise InputError(f"{type(language_model).__name__} has no decoder layers to hook")
        if sizes.ndim != 2 or not bool((sizes > 0).all()):
            raise InputError("sizes must be a (batch, length) tensor of positive token counts")
        self.bias = sizes.float().log()
        self.handles = []
        for layer in layers:
            attn = getattr(layer, "self_attn", None)
            if attn is None:
                raise InputError("proportional attention hooks each decoder layer's self_attn")
            self.handles.append(attn.register_forward_pre_hook(self._pre, with_kwargs=True))

    def __enter__(self) -> SizeBias:
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _pre(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if len(args) > 2:
            raise InputError("proportional attention expects the attention mask as a keyword")
        h = args[0] if args else kwargs["hidden_states"]
        mask = kwargs.get("attention_mask")
        q = h.shape[1]
        if mask is None:
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            past = int(cache.get_seq_length(module.layer_idx)) if cache is not None else 0
            kv = past + q
            # the causal mask SDPA would have applied: key j is visible to query i iff j <= past + i
            allowed = torch.arange(kv, device=h.device)[None, :] <= (
                past + torch.arange(q, device=h.device)[:, None]
            )
            mask = allowed[None, None]
        elif not isinstance(mask, torch.Tensor) or mask.dim() != 4:
            raise InputError("proportional attention needs the decoder's 4-D attention mask")
        kv = mask.shape[-1]
        dtype = h.dtype if h.is_floating_point() else torch.float32
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=dtype, device=h.device).masked_fill(
                ~mask, torch.finfo(dtype).min
            )
        bias = torch.zeros(self.bias.shape[0], kv, dtype=dtype, device=h.device)
        n = min(kv, self.bias.shape[1])
        bias[:, :n] = self.bias[:, :n].to(h.device, dtype)
        kwargs = {**kwargs, "attention_mask": mask.to(dtype) + bias[:, None, None, :]}
        return args, kwargs
