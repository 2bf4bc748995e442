"""A PNG of what a pruner did to a picture: kept patches as they are, dropped ones dimmed,
merged groups tinted in one colour each, with a line where neighbouring patches belong
to different output tokens. The picture comes next to its original; video frames tile.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._deps import require
from ..errors import InputError
from .result import VisualResult

_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
    ],
    dtype=np.float32,
)


def render(
    result: VisualResult,
    image: np.ndarray | Sequence[np.ndarray],
    path: str | os.PathLike[str] | None = None,
    *,
    scale: int = 2,
    title: str | None = None,
) -> Any:
    """Draw ``result`` over ``image`` (``(H, W, 3)`` uint8 covering the token grid; a list
    of frames for a ``(T, H, W)`` grid). Returns the PIL image; saves a PNG at ``path``."""
    pil = require("PIL.Image", "vision")
    draw_mod = require("PIL.ImageDraw", "vision")
    grid = result.grid
    if grid is None:
        raise InputError(
            "these tokens have no grid (e.g. OneVision's packed crops): nothing to draw"
        )
    frames = [np.asarray(image)] if len(grid) == 2 else [np.asarray(f) for f in image]
    t = 1 if len(grid) == 2 else grid[0]
    gh, gw = grid[-2:]
    if len(frames) != t or any(f.ndim != 3 or f.shape[2] != 3 for f in frames):
        raise InputError(f"give {t} RGB frame(s) for a grid of {grid}")
    labels = result.assignment.reshape(t, gh, gw)
    sizes = result.sizes
    tiles_orig, tiles_view = [], []
    for i, frame in enumerate(frames):
        cell = max(1, round(frame.shape[1] * scale / gw))
        h, w = gh * cell, gw * cell
        base = np.asarray(
            pil.fromarray(frame).resize((w, h), pil.Resampling.BICUBIC), dtype=np.float32
        )
        lab = np.kron(labels[i], np.ones((cell, cell), dtype=np.int64))
        out = base.copy()
        dropped = lab < 0
        out[dropped] = base[dropped] * 0.22 + 20.0
        merged = (lab >= 0) & (sizes[np.maximum(lab, 0)] > 1)
        tint = _PALETTE[np.maximum(lab, 0) % len(_PALETTE)]
        out[merged] = base[merged] * 0.55 + tint[merged] * 0.45
        edge = np.zeros(lab.shape, dtype=bool)
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        edge[1:, :] |= lab[1:, :] != lab[:-1, :]
        out[edge & ~dropped] = 255.0
        tiles_orig.append(base.astype(np.uint8))
        tiles_view.append(np.clip(out, 0, 255).astype(np.uint8))
    gap = 6
    top = np.concatenate(_spaced(tiles_orig, gap), axis=1)
    bottom = np.concatenate(_spaced(tiles_view, gap), axis=1)
    if t == 1:
        canvas = np.concatenate(
            [top, np.full((top.shape[0], gap, 3), 255, np.uint8), bottom], axis=1
        )
    else:
        canvas = np.concatenate(
            [top, np.full((gap, top.shape[1], 3), 255, np.uint8), bottom], axis=0
        )
    header = 22
    full = np.full((canvas.shape[0] + header, canvas.shape[1], 3), 255, np.uint8)
    full[header:] = canvas
    img = pil.fromarray(full)
    text = title or (
        f"{result.compressor}: {result.compressed_tokens}/{result.original_tokens} tokens"
        f" ({result.ratio:.1%}), {int(result.merged and (result.sizes > 1).sum())} merged groups,"
        f" {result.dropped.size} dropped"
    )
    draw_mod.Draw(img).text((4, 5), text, fill=(0, 0, 0))
    if path is not None:
        img.save(os.fspath(path), format="PNG")
    return img


def _spaced(tiles: list[np.ndarray], gap: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        if i:
            out.append(np.full((tile.shape[0], gap, 3), 255, np.uint8))
        out.append(tile)
    return out
