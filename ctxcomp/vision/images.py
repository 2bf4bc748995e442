"""Reading pictures: paths, PIL images or arrays -> RGB uint8 -> normalised pixel tensors.

Pillow does the decoding and resizing (bicubic, shorter side to the input size, then a
centre crop), numpy the normalisation. Kept small on purpose: models with their own
processor (LLaVA, Qwen2-VL) use it through transformers instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._deps import require
from ..errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_rgb(image: Any) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array from a path, a PIL image or an array (grey,
    RGB or RGBA; floats in [0, 1] are scaled)."""
    if isinstance(image, (str, os.PathLike)):
        pil = require("PIL.Image", "vision")
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise InputError(f"image file {path!r} does not exist")
        try:
            with pil.open(path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except (OSError, ValueError) as exc:
            raise InputError(f"{path!r} is not a readable image: {exc}") from None
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
            raise InputError(
                f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got {a.shape}"
            )
        a = a[..., :3]
        if a.dtype == np.uint8:
            return np.ascontiguousarray(a)
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise InputError("image array contains NaN or infinite values")
            hi = 1.0 if a.max() <= 1.0 else 255.0
            return np.clip(np.rint(a / hi * 255.0), 0, 255).astype(np.uint8)
        if np.issubdtype(a.dtype, np.integer):
            return np.clip(a, 0, 255).astype(np.uint8)
        raise InputError(f"unsupported image array dtype {a.dtype}")
    raise InputError(f"expected an image path, a PIL image or an array, got {type(image).__name__}")


def fit(rgb: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize the shorter side to the target (bicubic), then centre-crop to it."""
    pil = require("PIL.Image", "vision")
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = rgb.shape[:2]
    s = max(th / h, tw / w)
    nh, nw = max(th, round(h * s)), max(tw, round(w * s))
    im = pil.fromarray(rgb).resize((nw, nh), pil.Resampling.BICUBIC)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.asarray(im.crop((left, top, left + tw, top + th)), dtype=np.uint8)


def to_pixels(
    images: Sequence[np.ndarray],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Any:
    """A ``(B, 3, H, W)`` float32 torch tensor from same-sized RGB uint8 arrays."""
    torch = require("torch")
    x = np.stack([np.asarray(i, dtype=np.float32) / 255.0 for i in images])
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
