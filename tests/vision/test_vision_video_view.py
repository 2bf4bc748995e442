"""Temporal merging of video tokens, and the PNG view of kept/merged patches."""

from __future__ import annotations

import numpy as np
import pytest

import ctxcomp

torch = pytest.importorskip("torch")

from ctxcomp.core import compressors  # noqa: E402
from ctxcomp.vision.tokens import VisualTokens  # noqa: E402
from ctxcomp.vision.view import render  # noqa: E402


def video(frames: int = 4, side: int = 4, dim: int = 8) -> VisualTokens:
    """A static background with one object moving right by a cell per frame."""
    g = torch.Generator().manual_seed(0)
    bg = torch.randn(side * side, dim, generator=g)
    obj = torch.randn(dim, generator=g) * 3
    out = []
    for t in range(frames):
        f = bg.clone()
        f[t % (side * side)] = obj
        out.append(f)
    return VisualTokens.video(torch.stack(out))


def test_static_tokens_merge_over_time() -> None:
    v = video()
    # 42 neighbouring pairs are identical: 12 static cells x 3, and 6 around the object
    r = compressors.create("temporal", threshold=0.99).compress(v, target_tokens=64 - 42)
    assert r.grid == (4, 4, 4) and r.compressed_tokens == 22
    assert r.sizes.sum() + r.dropped.size == 64 and np.all(np.diff(r.kept) > 0)
    a = r.assignment.reshape(4, 16)
    static = [c for c in range(16) if c >= 4]  # never visited by the object
    assert all(a[0, c] == a[3, c] for c in static)  # one token over all four frames
    assert r.dropped.size == 0  # merging alone met the budget


def test_temporal_falls_back_to_spatial_pruning() -> None:
    v = video()
    r = compressors.create("temporal", threshold=0.99).compress(v, target_tokens=6)
    assert r.compressed_tokens == 6 and r.dropped.size > 0
    assert r.sizes.sum() + r.dropped.size == 64
    with pytest.raises(ctxcomp.InputError, match="frames, height, width"):
        compressors.create("temporal").compress(torch.randn(16, 8), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="cosine similarity"):
        compressors.create("temporal", threshold=2.0)
    with pytest.raises(ctxcomp.InputError, match="frames, tokens, dim"):
        VisualTokens.video(torch.randn(16, 8))


def test_view_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    g = torch.Generator().manual_seed(1)
    tok = VisualTokens(features=torch.randn(16, 8, generator=g), grid=(4, 4))
    img = np.random.default_rng(0).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    for method in ("pooling", "divprune"):
        r = compressors.create(method).compress(tok, ratio=0.25)
        out = tmp_path / f"{method}.png"
        pic = render(r, img, out)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out) as im:
            assert im.size == pic.size and im.size[0] > 2 * 56
    rv = compressors.create("temporal").compress(video(), ratio=0.5)
    frames = [img] * 4
    assert render(rv, frames, tmp_path / "v.png").size[0] > 4 * 56
    with pytest.raises(ctxcomp.InputError, match="4 RGB frame"):
        render(rv, [img], tmp_path / "bad.png")
    flat = compressors.create("divprune").compress(torch.randn(10, 4), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="no grid"):
        render(flat, img)
