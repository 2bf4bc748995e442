"""A Hugging Face vision encoder as a source of visual tokens.

:class:`VisionEncoder` wraps a ViT-family model (``Dinov2Model``, ``ViTModel``,
``CLIPVisionModel``, ``SiglipVisionModel``): it reads pictures, runs the model in batches on
the model's device, and returns :class:`~ctxcomp.vision.VisualTokens` (patch features of the
chosen layer, the [CLS] output, and the signals a method asked for), or — with token
merging hooked in (:mod:`.patch`) — the merged tokens and which patches each stands for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._deps import require
from ...core import model_fingerprint
from ...errors import InputError, ModelLoadError
from .. import images as imgs
from ..tokens import CLS_ATTENTION, VisualTokens
from .patch import TokenMerging, cls_attention, encoder_blocks, protected_tokens


@dataclass(frozen=True, eq=False)
class MergedTokens:
    """One image after merging inside the encoder: output tokens (``(k, D)``, rows in the
    encoder's order), the row each patch went to (``(N,)``), the [CLS] output, the grid."""

    features: Any
    assignment: Any
    cls: Any
    grid: tuple[int, int]
    image: np.ndarray


class VisionEncoder:
    """Reads pictures with a ViT-family model. ``feature_layer`` picks the hidden state the
    tokens come from (``None``: the final, normalised output; ``-2``: LLaVA's choice);
    ``cls_layers`` are the blocks whose [CLS] attention is summed for VTC-CLS (default: the
    second half of the blocks up to the feature layer)."""

    def __init__(
        self,
        model: Any,
        *,
        image_size: int | tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        feature_layer: int | None = None,
        cls_layers: Sequence[int] | None = None,
        batch_size: int = 8,
        name: str | None = None,
    ) -> None:
        self.model = model.eval()
        cfg = model.config
        self.model_type = str(getattr(cfg, "model_type", type(model).__name__))
        size = image_size if image_size is not None else getattr(cfg, "image_size", 224)
        self.image_size: tuple[int, int] = (
            (size, size) if isinstance(size, int) else (size[0], size[1])
        )
        self.patch = int(cfg.patch_size)
        if self.image_size[0] % self.patch or self.image_size[1] % self.patch:
            raise InputError(
                f"image size {self.image_size} is not a multiple of the patch size {self.patch}"
            )
        self.grid = (self.image_size[0] // self.patch, self.image_size[1] // self.patch)
        default_mean, default_std = _normalisation(self.model_type)
        self.mean = tuple(mean) if mean is not None else default_mean
        self.std = tuple(std) if std is not None else default_std
        self.protect = protected_tokens(model)
        self.n_blocks = len(encoder_blocks(model))
        self.feature_layer = feature_layer
        self.depth = self._depth(feature_layer)
        if cls_layers is None:
            cls_layers = range(self.depth // 2, self.depth)
        self.cls_layers = tuple(int(i) for i in cls_layers)
        if not self.cls_layers or min(self.cls_layers) < 0 or max(self.cls_layers) >= self.n_blocks:
            raise InputError(
                f"cls_layers must be block indices in [0, {self.n_blocks}), got {cls_layers}"
            )
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.name = name or type(model).__name__

    def _depth(self, feature_layer: int | None) -> int:
        """Blocks that run before the feature layer's hidden state."""
        if feature_layer is None:
            return self.n_blocks
        n = self.n_blocks + 1
        if not -n <= feature_layer < n:
            raise InputError(f"feature_layer {feature_layer} is outside the {n} hidden states")
        return feature_layer % n

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, device: str = "auto", **kwargs: Any
    ) -> VisionEncoder:
        """Load a vision model by hub id or local path (``AutoModel``; a CLIP/SigLIP
        checkpoint's vision tower is taken), placed on ``device`` (``auto``: CUDA when
        available)."""
        torch = require("torch")
        tr = require("transformers")
        try:
            cfg = tr.AutoConfig.from_pretrained(name_or_path)
            mt = str(getattr(cfg, "model_type", ""))
            if mt == "clip":
                model = tr.CLIPVisionModel.from_pretrained(name_or_path)
            elif mt == "siglip":
                model = tr.SiglipVisionModel.from_pretrained(name_or_path)
            else:
                model = tr.AutoModel.from_pretrained(name_or_path)
        except OSError as exc:
            raise ModelLoadError(f"cannot load vision model {name_or_path!r}: {exc}") from exc
        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        return cls(model.to(dev), name=name_or_path, **kwargs)

    def config(self) -> dict[str, Any]:
        return {
            "model": model_fingerprint(self.model),
            "image_size": list(self.image_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "feature_layer": self.feature_layer,
            "cls_layers": list(self.cls_layers),
        }

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def pictures(self, images: Sequence[Any]) -> list[np.ndarray]:
        """The inputs as RGB arrays at the model's input size (what the tokens cover)."""
        return [imgs.fit(imgs.load_rgb(i), self.image_size) for i in images]

    def pixels(self, pictures: Sequence[np.ndarray]) -> Any:
        return imgs.to_pixels(pictures, self.mean, self.std).to(self.device, self.dtype)

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def encode(self, images: Sequence[Any], signals: Sequence[str] = ()) -> list[VisualTokens]:
        """Visual tokens of every image (batched); ``signals`` may ask for ``cls_attention``."""
        torch = require("torch")
        unknown = set(signals) - {CLS_ATTENTION}
        if unknown:
            raise InputError(
                f"a vision encoder cannot provide {sorted(unknown)}: those come from a language "
                "model (use ctxcomp.vision.hf.PrunedVLM)"
            )
        out: list[VisualTokens] = []
        for start in range(0, len(images), self.batch_size):
            pics = self.pictures(images[start : start + self.batch_size])
            with torch.inference_mode():
                if CLS_ATTENTION in signals:
                    with cls_attention(self.model, self.cls_layers) as rows:
                        hs, cls = self._forward(self.pixels(pics))
                    att = torch.stack(rows).sum(0)[:, self.protect :]
                else:
                    hs, cls = self._forward(self.pixels(pics))
                    att = None
            for b, pic in enumerate(pics):
                sig = {CLS_ATTENTION: att[b].float().cpu()} if att is not None else {}
                out.append(
                    VisualTokens(
                        features=hs[b, self.protect :].float().cpu(),
                        grid=self.grid,
                        cls=cls[b].float().cpu() if cls is not None else None,
                        signals=sig,
                        image=pic,
                    )
                )
        return out

    def _forward(self, pixels: Any) -> tuple[Any, Any]:
        want_hs = self.feature_layer is not None
        res = self.model(pixel_values=pixels, output_hidden_states=want_hs, return_dict=True)
        hs = res.hidden_states[self.feature_layer] if want_hs else res.last_hidden_state
        cls = hs[:, 0] if self.protect else None
        return hs, cls

    def merged(
        self,
        images: Sequence[Any],
        schedule: Sequence[int],
        thresholds: Sequence[float] | None = None,
        *,
        calibrate: bool = False,
        prop_attn: bool = True,
    ) -> tuple[list[MergedTokens], list[float]]:
        """Encode with ToMe/DyMU merging in the blocks before the feature layer. Returns
        each image's merged tokens, and (``calibrate=True``) the per-block thresholds seen."""
        torch = require("torch")
        if len(schedule) != self.depth:
            raise InputError(f"the merge schedule needs {self.depth} entries, got {len(schedule)}")
        out: list[MergedTokens] = []
        seen: list[list[float]] = []
        for start in range(0, len(images), self.batch_size):
            pics = self.pictures(images[start : start + self.batch_size])
            with (
                torch.inference_mode(),
                TokenMerging(
                    self.model,
                    schedule,
                    thresholds,
                    calibrate=calibrate,
                    prop_attn=prop_attn,
                    protect=self.protect,
                ) as tm,
            ):
                hs, cls = self._forward(self.pixels(pics))
                state = tm.history[self.depth]
                seen.append(list(tm.observed))
            p = self.protect
            for b, pic in enumerate(pics):
                rows = int((state.size[b] > 0).sum())
                out.append(
                    MergedTokens(
                        features=hs[b, p:rows].float().cpu(),
                        assignment=(state.assign[b, p:] - p).cpu(),
                        cls=cls[b].float().cpu() if cls is not None else None,
                        grid=self.grid,
                        image=pic,
                    )
                )
        observed = [float(np.mean(col)) for col in zip(*seen)] if calibrate else []
        return out, observed

    def n_tokens(self) -> int:
        return math.prod(self.grid)


def _normalisation(model_type: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if model_type.startswith("clip"):
        return imgs.CLIP_MEAN, imgs.CLIP_STD
    if model_type.startswith("siglip"):
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return imgs.IMAGENET_MEAN, imgs.IMAGENET_STD
