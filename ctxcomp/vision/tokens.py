"""The input of every visual pruner: one image's (or one video's) visual tokens.

A :class:`VisualTokens` holds the token features a vision encoder produced (``(N, D)``),
where they sit (``grid``: ``(H, W)`` patches of an image, ``(T, H, W)`` for video frames),
and the side signals some methods rank by (the encoder's [CLS] attention for VTC-CLS, the
attention an LLM layer gave each token for FastV). Everything is validated once, here, so
methods can trust shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError

# Signals methods rank by; each is a float vector with one score per token.
CLS_ATTENTION = "cls_attention"  # [CLS] -> patch attention in the vision encoder (VTC-CLS)
LLM_ATTENTION = "llm_attention"  # attention the tokens received in an LLM layer (FastV)


@dataclass(frozen=True, eq=False)
class VisualTokens:
    """Visual tokens of one image or video, ready to be pruned or merged.

    ``features`` are the tokens as they would reach the language model (``(N, D)``).
    ``grid`` gives their layout when they come from a patch grid (product must be ``N``).
    ``keys`` is the similarity space diversity/merging methods compare tokens in (the
    encoder's attention keys, say); the features are used when it is absent.
    ``signals`` holds per-token scores (``(N,)``) under the names in this module.
    ``protected`` tokens (indices) are always kept and never merged (e.g. row separators).
    ``image`` is the picture the tokens came from, ``(H, W, 3)`` uint8, for the PNG view.
    """

    features: torch.Tensor
    grid: tuple[int, ...] | None = None
    cls: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    signals: Mapping[str, torch.Tensor] = field(default_factory=dict)
    protected: tuple[int, ...] = ()
    image: np.ndarray | None = None

    def __post_init__(self) -> None:
        f = _tensor(self.features, "features")
        if f.ndim != 2:
            raise InputError(
                f"visual token features must be a 2-D (tokens, dim) array, got shape {tuple(f.shape)}"
                " (a batch or a video: one VisualTokens per image, or VisualTokens.video(...))"
            )
        n, d = f.shape
        if n == 0 or d == 0:
            raise InputError(f"visual token features are empty (shape {tuple(f.shape)})")
        if not f.is_floating_point():
            raise InputError(f"visual token features must be floating point, got {f.dtype}")
        if not bool(torch.isfinite(f).all()):
            raise InputError("visual token features contain NaN or infinite values")
        object.__setattr__(self, "features", f)
        if self.grid is not None:
            grid = tuple(int(g) for g in self.grid)
            if not 1 <= len(grid) <= 3 or min(grid) <= 0 or math.prod(grid) != n:
                raise InputError(
                    f"grid {self.grid} does not lay out {n} tokens: give (H, W) or (T, H, W) "
                    f"with a product of {n}"
                )
            object.__setattr__(self, "grid", grid)
        if self.cls is not None:
            c = _tensor(self.cls, "cls").reshape(-1)
            if c.numel() != d:
                raise InputError(f"cls has {c.numel()} values, the features have dim {d}")
            object.__setattr__(self, "cls", c)
        if self.keys is not None:
            k = _tensor(self.keys, "keys")
            if k.ndim != 2 or k.shape[0] != n:
                raise InputError(f"keys must be ({n}, dim), got shape {tuple(k.shape)}")
            object.__setattr__(self, "keys", k)
        sig: dict[str, torch.Tensor] = {}
        for name, v in dict(self.signals).items():
            t = _tensor(v, f"signal {name!r}").reshape(-1)
            if t.numel() != n:
                raise InputError(f"signal {name!r} has {t.numel()} scores for {n} tokens")
            if not bool(torch.isfinite(t).all()):
                raise InputError(f"signal {name!r} contains NaN or infinite values")
            sig[name] = t.float()
        object.__setattr__(self, "signals", sig)
        prot = tuple(sorted({int(i) for i in self.protected}))
        if prot and (prot[0] < 0 or prot[-1] >= n):
            raise InputError(f"protected token indices must lie in [0, {n}), got {prot}")
        object.__setattr__(self, "protected", prot)
        if self.image is not None:
            img = np.asarray(self.image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise InputError("image must be an (H, W, 3) uint8 array")
            object.__setattr__(self, "image", img)

    @property
    def n(self) -> int:
        """Number of tokens."""
        return int(self.features.shape[0])

    @property
    def metric(self) -> torch.Tensor:
        """The space similarity is measured in: ``keys`` when given, else the features."""
        return self.keys if self.keys is not None else self.features

    def signal(self, name: str, method: str, hint: str) -> torch.Tensor:
        """The named per-token signal, or an InputError saying which method needs it and why."""
        if name not in self.signals:
            raise InputError(f"{method} needs the {name!r} signal, which these tokens lack: {hint}")
        return self.signals[name]

    @classmethod
    def video(
        cls,
        frames: Any,
        grid: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> VisualTokens:
        """Tokens of ``T`` frames (``(T, N, D)``) as one token set with grid ``(T, H, W)``."""
        f = _tensor(frames, "frames")
        if f.ndim != 3:
            raise InputError(f"video frames must be (frames, tokens, dim), got {tuple(f.shape)}")
        t, n, _ = f.shape
        hw = grid if grid is not None else _square(n)
        if hw is None:
            raise InputError(f"{n} tokens per frame is not a square grid: pass grid=(H, W)")
        return cls(features=f.reshape(t * n, -1), grid=(t, *hw), **kwargs)


def as_tokens(x: Any) -> VisualTokens:
    """Accept VisualTokens, or an (N, D) array / tensor (a square N gets a square grid)."""
    if isinstance(x, VisualTokens):
        return x
    if isinstance(x, (np.ndarray, torch.Tensor)):
        f = _tensor(x, "features")
        grid = _square(int(f.shape[0])) if f.ndim == 2 else None
        return VisualTokens(features=f, grid=grid)
    raise InputError(
        "a visual pruner takes VisualTokens or an (N, D) feature array (images too, when it "
        f"was built with an encoder); got {type(x).__name__}"
    )


def _square(n: int) -> tuple[int, int] | None:
    s = math.isqrt(n)
    return (s, s) if s * s == n and n > 1 else None


def _tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        try:
            return torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what} is not numeric: {exc}") from None
    raise InputError(f"{what} must be a tensor or an array, got {type(x).__name__}")
