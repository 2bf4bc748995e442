"""Prune a vision-language model's visual tokens between the projector and the LLM.

>>> vlm = PrunedVLM(model, "divprune", ratio=0.25)     # doctest: +SKIP
>>> out = vlm.generate(**processor(images=img, text=prompt, return_tensors="pt"),
...                    max_new_tokens=32)              # doctest: +SKIP
>>> vlm.results[0].kept                                # what the LLM saw  # doctest: +SKIP

:meth:`PrunedVLM.prepare` computes the image features once, prunes (or merges) each image
to the budget, and rebuilds the language model's inputs: shorter ``input_ids`` (each image
slot shortened to its kept tokens), the matching ``inputs_embeds`` and ``attention_mask``
(rows re-padded on the left), and — for Qwen2-VL — the M-RoPE position ids every kept token
had in the full sequence. ``generate`` returns the caller's prompt followed by the new
tokens, so it slices like the model's own ``generate``. FastV prunes inside the LLM
instead (:mod:`.fastv`). With nothing pruned, the output equals the model's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ...budget import Budget
from ...core import Request
from ...errors import InputError
from ..methods.fastv import FastV
from ..methods.tome import ToMe
from ..pruner import VisualTokenPruner
from ..result import VisualResult
from .adapters import Adapter, adapter_for


@dataclass
class Prepared:
    """Language-model inputs after pruning, and what each image became."""

    kwargs: dict[str, Any]
    results: list[VisualResult]
    source: torch.Tensor  # (B, L') original position of every new position, -1 = padding
    slots: list[tuple[int, int, int]]  # (row, start, length) of each image in the new inputs
    sizes: torch.Tensor | None = None  # (B, L') tokens each new position stands for


class PrunedVLM:
    """A LLaVA / LLaVA-OneVision / Qwen2-VL model whose visual tokens are pruned to a
    budget (``ratio`` of each image's tokens, or ``target_tokens`` per image) by a
    :class:`~ctxcomp.vision.VisualTokenPruner` (an instance, or a registered name).

    Merged tokens (pooling, ToMe, ``recycle="merge"``) stand for several patches: with
    ``prop_attn=True`` (the default, as ToMe does for off-the-shelf models) every LLM layer
    weighs each by its size (a ``log size`` attention bias, :mod:`.prop_attn`);
    ``prop_attn=False`` gives the LLM the averaged tokens only."""

    def __init__(
        self,
        model: Any,
        pruner: VisualTokenPruner | str,
        *,
        ratio: float | None = None,
        target_tokens: int | None = None,
        budget: Budget | None = None,
        prop_attn: bool = True,
        **options: Any,
    ) -> None:
        if isinstance(pruner, str):
            from ...core import compressors

            pruner = compressors.create(pruner, **options)
        elif options:
            raise InputError("method options go with a method name, not a built pruner")
        if not isinstance(pruner, VisualTokenPruner):
            raise InputError(f"expected a visual-token pruner, got {type(pruner).__name__}")
        self.model = model
        self.pruner = pruner
        self.budget = Budget.of(ratio, target_tokens, budget)
        self.adapter: Adapter = adapter_for(model)
        self.prop_attn = bool(prop_attn)
        self.results: list[VisualResult] = []

    # -- building the pruned inputs -----------------------------------------------------

    @torch.inference_mode()
    def prepare(self, **inputs: Any) -> Prepared:
        """Pruned language-model inputs for the model's usual inputs (``input_ids``,
        ``attention_mask``, ``pixel_values``, ...). ``kwargs`` go to ``model(...)`` or
        ``model.generate(...)``."""
        ids = inputs.get("input_ids")
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            raise InputError("prepare() needs input_ids as a (batch, length) tensor")
        mask = inputs.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        if isinstance(self.pruner, FastV):
            results: list[VisualResult] = []
            kept = None
        elif isinstance(self.pruner, ToMe):
            results = self._merged(inputs)
            kept = results
        else:
            feats = self.adapter.features(inputs, self.pruner.needs)
            results = [
                self.pruner.prune(f.tokens, Request((f.tokens,), self.budget)) for f in feats
            ]
            kept = results
        return self._layout(inputs, ids, mask, kept)

    def _merged(self, inputs: dict[str, Any]) -> list[VisualResult]:
        assert isinstance(self.pruner, ToMe)
        tome = self.pruner

        def plan(n: int, depth: int) -> Any:
            return tome.plan(n, self.budget.resolve(n), depth)

        out = []
        for m in self.adapter.merged(inputs, plan):
            out.append(
                tome.result(m.assignment, Request((m.rows,), self.budget), grid=m.grid, rows=m.rows)
            )
        return out

    def _layout(
        self,
        inputs: dict[str, Any],
        ids: torch.Tensor,
        mask: torch.Tensor,
        results: list[VisualResult] | None,
    ) -> Prepared:
        token_ids = {self.adapter.config.image_token_id}
        video = getattr(self.adapter.config, "video_token_id", None)
        if video is not None:
            token_ids.add(video)
        is_vis = torch.zeros_like(ids, dtype=torch.bool)
        for t in token_ids:
            is_vis |= ids == t
        embeds = self.adapter.embed(ids)
        if results is None:  # FastV: nothing removed before the LLM
            feats = self.adapter.features(inputs, ())
            flat = torch.cat([f.tokens.features for f in feats]).to(embeds)
            if int(is_vis.sum()) != flat.shape[0]:
                raise InputError(
                    f"{int(is_vis.sum())} image tokens in input_ids for {flat.shape[0]} image features"
                )
            embeds = embeds.masked_scatter(is_vis[..., None], flat)
            source = torch.arange(ids.shape[1]).expand_as(ids).clone()
            kw = self._kwargs(inputs, ids, embeds, mask, source)
            return Prepared(kw, [], source, _slots(is_vis, [f.tokens.n for f in feats]))
        slots = _slots(is_vis, [r.original_tokens for r in results])
        rows_src: list[list[int]] = [[] for _ in range(ids.shape[0])]
        rows_emb: list[list[torch.Tensor]] = [[] for _ in range(ids.shape[0])]
        rows_size: list[list[torch.Tensor]] = [[] for _ in range(ids.shape[0])]
        slot_at = {(b, s): i for i, (b, s, _n) in enumerate(slots)}
        for b in range(ids.shape[0]):
            p = 0
            while p < ids.shape[1]:
                i = slot_at.get((b, p))
                if i is None:
                    rows_src[b].append(p)
                    rows_emb[b].append(embeds[b, p : p + 1])
                    rows_size[b].append(torch.ones(1))
                    p += 1
                    continue
                r = results[i]
                rows_src[b].extend((p + r.kept).tolist())
                rows_emb[b].append(r.features.to(embeds))
                rows_size[b].append(torch.as_tensor(r.sizes, dtype=torch.float32))
                p += r.original_tokens
        width = max(len(s) for s in rows_src)
        pad_id = _pad_id(self.model)
        new_ids = torch.full((ids.shape[0], width), pad_id, dtype=ids.dtype)
        new_mask = torch.zeros((ids.shape[0], width), dtype=mask.dtype)
        source = torch.full((ids.shape[0], width), -1, dtype=torch.long)
        new_emb = torch.zeros((ids.shape[0], width, embeds.shape[-1]), dtype=embeds.dtype)
        sizes = torch.ones((ids.shape[0], width))
        for b in range(ids.shape[0]):
            src = torch.as_tensor(rows_src[b], dtype=torch.long)
            off = width - src.numel()
            source[b, off:] = src
            new_ids[b, off:] = ids[b, src]
            new_mask[b, off:] = mask[b, src]
            new_emb[b, off:] = torch.cat(rows_emb[b])
            sizes[b, off:] = torch.cat(rows_size[b])
        kw = self._kwargs(inputs, new_ids, new_emb, new_mask, source)
        return Prepared(kw, results, source, [], sizes)

    def _kwargs(
        self,
        inputs: dict[str, Any],
        ids: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        source: torch.Tensor,
    ) -> dict[str, Any]:
        dev = self.adapter.model.device
        kw: dict[str, Any] = {
            "input_ids": ids.to(dev),
            "inputs_embeds": embeds.to(dev),
            "attention_mask": mask.to(dev),
        }
        pos = self.adapter.positions(inputs, source, mask)
        if pos is not None:
            kw["position_ids"] = pos.to(dev)
        return kw

    # -- running ------------------------------------------------------------------------

    def __call__(self, **inputs: Any) -> Any:
        """A forward pass on the pruned inputs (returns the model's output)."""
        prep, rest = self._split(inputs)
        kw = {k: v for k, v in prep.kwargs.items() if k != "input_ids"}
        with self.hooks(prep):
            return self.model(**kw, **rest)

    def generate(self, **inputs: Any) -> torch.Tensor:
        """``model.generate`` on the pruned inputs; returns the caller's ``input_ids``
        followed by the generated tokens."""
        prep, rest = self._split(inputs)
        with self.hooks(prep):
            out = self.model.generate(**prep.kwargs, **rest)
        if not isinstance(out, torch.Tensor):
            raise InputError("PrunedVLM.generate returns token ids: drop return_dict_in_generate")
        new = out[:, prep.kwargs["input_ids"].shape[1] :]
        return torch.cat([inputs["input_ids"].to(new.device), new], dim=1)

    def _split(self, inputs: dict[str, Any]) -> tuple[Prepared, dict[str, Any]]:
        model_keys = {
            "input_ids",
            "attention_mask",
            "mm_token_type_ids",
            "image_sizes",
            "batch_num_images",
            *self.adapter.vision_inputs,
        }
        prep = self.prepare(**{k: v for k, v in inputs.items() if k in model_keys})
        self.results = prep.results
        return prep, {k: v for k, v in inputs.items() if k not in model_keys}

    def hooks(self, prep: Prepared) -> Any:
        """The hooks a call on ``prep`` runs under (FastV's; proportional attention when
        tokens were merged; else none): a context manager."""
        import contextlib

        if not isinstance(self.pruner, FastV):
            if self.prop_attn and prep.sizes is not None and bool((prep.sizes != 1).any()):
                from .prop_attn import SizeBias

                return SizeBias(self.adapter.language_model, prep.sizes)
            return contextlib.nullcontext()
        from .fastv import FastVHooks

        return FastVHooks(
            self.adapter.language_model,
            self.pruner,
            self.budget,
            prep.slots,
            prep.kwargs["attention_mask"],
            on_results=self._fastv_results,
        )

    def _fastv_results(self, results: Sequence[VisualResult]) -> None:
        self.results = list(results)


def _slots(is_vis: torch.Tensor, lengths: Sequence[int]) -> list[tuple[int, int, int]]:
    """Cut the visual-token positions (row-major) into consecutive slots of ``lengths``."""
    pos = torch.nonzero(is_vis)
    if pos.shape[0] != sum(lengths):
        raise InputError(
            f"{pos.shape[0]} image tokens in input_ids for {sum(lengths)} image features: "
            "the prompt and the pixel inputs do not match"
        )
    out, i = [], 0
    for n in lengths:
        b, s = int(pos[i, 0]), int(pos[i, 1])
        if int(pos[i + n - 1, 0]) != b or int(pos[i + n - 1, 1]) != s + n - 1:
            raise InputError("an image's tokens must be contiguous in input_ids")
        out.append((b, s, n))
        i += n
    return out


def _pad_id(model: Any) -> int:
    for cfg in (
        getattr(model, "generation_config", None),
        model.config,
        getattr(model.config, "text_config", None),
    ):
        v = getattr(cfg, "pad_token_id", None) if cfg is not None else None
        if isinstance(v, int):
            return v
    return 0
