"""What differs between vision-language models: where image features come from, how they
are laid out, and how the language model numbers positions.

Each adapter turns a model's own inputs (``pixel_values`` and friends, as its processor
returns them) into one :class:`~ctxcomp.vision.VisualTokens` per image — the features right
after the projector, i.e. exactly what the language model would read — and says which
token ids mark image slots. Supported: ``LlavaForConditionalGeneration``,
``LlavaOnevisionForConditionalGeneration`` and ``Qwen2VLForConditionalGeneration``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import InputError
from ..tokens import CLS_ATTENTION, VisualTokens
from .patch import TokenMerging, cls_attention, encoder_blocks


@dataclass(frozen=True)
class Features:
    """One image's (or video's) tokens for the language model, and their token id."""

    tokens: VisualTokens
    token_id: int


@dataclass(frozen=True)
class MergedFeatures:
    """One image merged inside the vision tower: projected rows, patch -> row map, grid."""

    rows: torch.Tensor
    assignment: torch.Tensor
    grid: tuple[int, ...]
    token_id: int


class Adapter:
    """Base: the language model, its embeddings, and positions (plain 1-D by default)."""

    family = "base"
    vision_inputs: tuple[str, ...] = ("pixel_values",)

    def __init__(self, model: Any) -> None:
        self.model = model
        self.config = model.config

    @property
    def language_model(self) -> nn.Module:
        return self.model.model.language_model

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)

    def features(self, inputs: dict[str, Any], needs: Sequence[str]) -> list[Features]:
        raise NotImplementedError

    def merged(
        self, inputs: dict[str, Any], plan: Callable[[int, int], Any]
    ) -> list[MergedFeatures]:
        raise InputError(
            f"merging inside the vision tower (tome, dymu) is not supported for {self.family}: "
            "its encoder's token layout must stay intact; use a method that prunes after the "
            "projector (divprune, random, pooling, fastv)"
        )

    def positions(
        self, inputs: dict[str, Any], source: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor | None:
        """Position ids for the pruned sequence (``source``: original index of every new
        position, -1 for padding), or None to let the model count them."""
        return None


class LlavaAdapter(Adapter):
    family = "LLaVA"

    def _select(self) -> tuple[int, str]:
        layer = self.config.vision_feature_layer
        if not isinstance(layer, int):
            raise InputError("pruning needs a single vision_feature_layer (the config has a list)")
        return layer, self.config.vision_feature_select_strategy

    def _cls_layers(self, tower: nn.Module, layer: int) -> list[int]:
        n = len(encoder_blocks(tower))
        depth = layer % (n + 1)
        return list(range(depth // 2, depth))

    def features(self, inputs: dict[str, Any], needs: Sequence[str]) -> list[Features]:
        layer, strategy = self._select()
        tower = self.model.model.vision_tower
        pix = inputs["pixel_values"]
        extra = {k: inputs[k] for k in ("image_sizes",) if inputs.get(k) is not None}
        att: torch.Tensor | None = None
        if CLS_ATTENTION in needs:
            with cls_attention(tower, self._cls_layers(tower, layer)) as rows:
                feats = self._image_features(pix, layer, strategy, extra)
            att = torch.stack(rows).sum(0)
        else:
            feats = self._image_features(pix, layer, strategy, extra)
        out = []
        for i, f in enumerate(feats):
            protected: tuple[int, ...] = ()
            sig = {}
            if att is not None:
                a = att[i].float()
                if strategy == "default":
                    a = a[1:]
                else:
                    protected = (0,)  # the [CLS] token itself goes to the LLM: keep it
                sig = {CLS_ATTENTION: a[: f.shape[0]].cpu()}
            grid = _square_grid(f.shape[0] - len(protected)) if not protected else None
            out.append(
                Features(
                    VisualTokens(features=f, grid=grid, signals=sig, protected=protected),
                    self.config.image_token_id,
                )
            )
        return out

    def _image_features(
        self, pix: torch.Tensor, layer: int, strategy: str, extra: dict[str, Any]
    ) -> list[torch.Tensor]:
        out = self.model.model.get_image_features(
            pixel_values=pix,
            vision_feature_layer=layer,
            vision_feature_select_strategy=strategy,
            return_dict=True,
            **extra,
        )
        return list(out.pooler_output)

    def merged(
        self, inputs: dict[str, Any], plan: Callable[[int, int], Any]
    ) -> list[MergedFeatures]:
        layer, strategy = self._select()
        if strategy != "default":
            raise InputError(
                "merging inside the vision tower needs vision_feature_select_strategy='default'"
            )
        tower = self.model.model.vision_tower
        n_blocks = len(encoder_blocks(tower))
        depth = layer % (n_blocks + 1)
        patch = self.config.vision_config.patch_size
        h, w = (int(d) // patch for d in inputs["pixel_values"].shape[-2:])  # the real input
        schedule, thresholds = plan(h * w, depth)
        with TokenMerging(tower, schedule, thresholds) as tm:
            feats = self._image_features(inputs["pixel_values"], layer, strategy, {})
            state = tm.history[depth]
        out = []
        for i, f in enumerate(feats):
            rows = int((state.size[i] > 0).sum()) - state.protect
            out.append(
                MergedFeatures(
                    rows=f[:rows],
                    assignment=(state.assign[i, state.protect :] - state.protect).cpu(),
                    grid=(h, w),
                    token_id=self.config.image_token_id,
                )
            )
        return out


class OnevisionAdapter(LlavaAdapter):
    """LLaVA-OneVision: anyres crops packed with a learned newline token after every row;
    the newline tokens are protected (always kept), the rest is pruned as one sequence."""

    family = "LLaVA-OneVision"

    def features(self, inputs: dict[str, Any], needs: Sequence[str]) -> list[Features]:
        if CLS_ATTENTION in needs:
            raise InputError(
                "LLaVA-OneVision's SigLIP encoder has no [CLS] token: vtc-cls cannot rank its "
                "patches; use divprune, random, pooling or fastv"
            )
        layer, strategy = self._select()
        kw = {
            k: inputs[k] for k in ("image_sizes", "batch_num_images") if inputs.get(k) is not None
        }
        out = self.model.model.get_image_features(
            pixel_values=inputs["pixel_values"],
            vision_feature_layer=layer,
            vision_feature_select_strategy=strategy,
            return_dict=True,
            **kw,
        )
        newline = self.model.model.image_newline
        res = []
        for f in out.pooler_output:
            is_nl = (f == newline.to(f.dtype)).all(dim=-1)
            prot = tuple(int(i) for i in torch.nonzero(is_nl).flatten())
            res.append(
                Features(VisualTokens(features=f, protected=prot), self.config.image_token_id)
            )
        return res


class Qwen2VLAdapter(Adapter):
    """Qwen2-VL: 2x2-merged patch tokens on a ``(T, H, W)`` grid; positions are M-RoPE
    (temporal, height, width), kept from the unpruned sequence for every kept token."""

    family = "Qwen2-VL"
    vision_inputs = ("pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw")

    def features(self, inputs: dict[str, Any], needs: Sequence[str]) -> list[Features]:
        if CLS_ATTENTION in needs:
            raise InputError(
                "Qwen2-VL's vision encoder has no [CLS] token: vtc-cls cannot rank its patches;"
                " use divprune, random, pooling, temporal or fastv"
            )
        m = self.config.vision_config.spatial_merge_size
        out: list[Features] = []
        for kind, pix_key, grid_key, token_id in (
            ("image", "pixel_values", "image_grid_thw", self.config.image_token_id),
            ("video", "pixel_values_videos", "video_grid_thw", self.config.video_token_id),
        ):
            if inputs.get(pix_key) is None:
                continue
            grids = inputs[grid_key]
            fn = getattr(self.model.model, f"get_{kind}_features")
            feats = fn(inputs[pix_key], grids, return_dict=True).pooler_output
            for f, g in zip(feats, grids.tolist()):
                grid = (g[0], g[1] // m, g[2] // m) if g[0] > 1 else (g[1] // m, g[2] // m)
                out.append(Features(VisualTokens(features=f, grid=grid), token_id))
        return out

    def positions(
        self, inputs: dict[str, Any], source: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor | None:
        ids = inputs["input_ids"]
        attn = inputs.get("attention_mask")
        attn = torch.ones_like(ids) if attn is None else attn
        tt = inputs.get("mm_token_type_ids")
        if tt is None:
            tt = (ids == self.config.image_token_id).int() + 2 * (
                ids == self.config.video_token_id
            ).int()
        pos, _ = self.model.model.get_rope_index(
            ids,
            mm_token_type_ids=tt,
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            attention_mask=attn,
        )
        src = source.clamp_min(0)
        rows = torch.arange(ids.shape[0], device=ids.device)[:, None]
        mrope = pos[:, rows, src]  # (3, B, L')
        text = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
        mrope = mrope.masked_fill((mask == 0)[None], 1)
        return torch.cat([text[None], mrope], dim=0)


def adapter_for(model: Any) -> Adapter:
    """The adapter for a supported vision-language model, or an InputError naming them."""
    name = type(model).__name__
    if name.startswith("LlavaOnevision"):
        return OnevisionAdapter(model)
    if name.startswith("Llava") and "Next" not in name:
        return LlavaAdapter(model)
    if name.startswith("Qwen2VL"):
        return Qwen2VLAdapter(model)
    raise InputError(
        f"{name} is not supported: visual-token pruning hooks into "
        "LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration and "
        "Qwen2VLForConditionalGeneration"
    )


def _square_grid(n: int) -> tuple[int, int] | None:
    s = math.isqrt(n)
    return (s, s) if s * s == n else None
