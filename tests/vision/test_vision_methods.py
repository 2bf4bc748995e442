"""Invariants of every visual-token method on synthetic tokens: budget held, indices valid
and sorted, merge sizes summing to the input count, determinism, and named errors."""

from __future__ import annotations

import numpy as np
import pytest

import ctxcomp
from ctxcomp.core import Result, compressors

torch = pytest.importorskip("torch")

from ctxcomp.vision import METHODS  # noqa: E402
from ctxcomp.vision.pruner import canonical  # noqa: E402
from ctxcomp.vision.result import VisualResult  # noqa: E402
from ctxcomp.vision.tokens import CLS_ATTENTION, LLM_ATTENTION, VisualTokens  # noqa: E402

POST_ENCODER = ("random", "pooling", "vtc-cls", "divprune", "fastv")


def tokens(n_side: int = 12, dim: int = 16, seed: int = 0) -> VisualTokens:
    g = torch.Generator().manual_seed(seed)
    n = n_side * n_side
    f = torch.randn(n, dim, generator=g)
    f[: n // 3] = f[0] + 0.01 * torch.randn(n // 3, dim, generator=g)  # a near-duplicate region
    return VisualTokens(
        features=f,
        grid=(n_side, n_side),
        signals={
            CLS_ATTENTION: torch.rand(n, generator=g),
            LLM_ATTENTION: torch.rand(n, generator=g),
        },
    )


def check(r: VisualResult, inputs: np.ndarray, k: int) -> None:
    n = inputs.shape[0]
    assert isinstance(r, Result) and r.original_tokens == n
    assert 1 <= r.compressed_tokens <= k
    kept = r.kept
    assert np.all(np.diff(kept) > 0) and kept.min() >= 0 and kept.max() < n
    assert r.sizes.sum() + r.dropped.size == n
    assert np.all(r.sizes >= 1)
    assert r.features.shape == (r.compressed_tokens, 16)
    a = r.assignment
    assert a.shape == (n,) and a.min() >= -1 and a.max() == r.compressed_tokens - 1
    for j, g in enumerate(r.groups()):  # each row is the mean of its group
        assert g[0] == kept[j]
        np.testing.assert_allclose(r.features[j].numpy(), inputs[g].mean(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", POST_ENCODER)
@pytest.mark.parametrize(
    "budget", [{"ratio": 0.5}, {"ratio": 0.25}, {"ratio": 0.125}, {"target_tokens": 7}]
)
def test_budget_held_and_result_consistent(method: str, budget: dict) -> None:
    tok = tokens()
    pruner = compressors.create(method)
    r = pruner.compress(tok, **budget)
    k = ctxcomp.Budget(**budget).resolve(tok.n)
    check(r, tok.features.numpy(), k)
    if method != "pooling":
        assert r.compressed_tokens == k and not r.merged and r.dropped.size == tok.n - k
    else:
        assert r.dropped.size == 0 and r.sizes.sum() == tok.n  # pooling merges everything
    assert r.config_hash == pruner.config_hash and r.compressor == method


@pytest.mark.parametrize("method", POST_ENCODER)
def test_deterministic(method: str) -> None:
    a = compressors.create(method).compress(tokens(seed=3), ratio=0.25)
    b = compressors.create(method).compress(tokens(seed=3), ratio=0.25)
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert torch.equal(a.features, b.features)


def test_ranking_methods_keep_the_top_scores() -> None:
    tok = tokens()
    for method, sig in (("vtc-cls", CLS_ATTENTION), ("fastv", LLM_ATTENTION)):
        r = compressors.create(method).compress(tok, target_tokens=10)
        top = torch.topk(tok.signals[sig], 10).indices.sort().values.numpy()
        np.testing.assert_array_equal(r.kept, top)
        assert r.scores is not None and r.scores.shape == (tok.n,)


def test_divprune_is_diverse() -> None:
    """The near-duplicate third of the tokens gets few slots; random keeps many of them."""
    tok = tokens()
    dup = set(range(tok.n // 3))
    div = compressors.create("divprune").compress(tok, ratio=0.25)
    rnd = compressors.create("random").compress(tok, ratio=0.25)
    assert len(dup & set(div.kept.tolist())) <= 2 < len(dup & set(rnd.kept.tolist()))


def test_pooling_cells_follow_the_grid() -> None:
    r = compressors.create("pooling").compress(tokens(12), ratio=0.25)  # 144 -> 36 cells of 2x2
    assert r.compressed_tokens == 36 and set(r.sizes.tolist()) == {4}
    grid = r.assignment.reshape(12, 12)
    assert grid[0, 0] == grid[1, 1] and grid[0, 0] != grid[0, 2]
    assert r.positions().shape == (36, 2) and r.positions()[1].tolist() == [0, 2]


def test_random_seed_changes_the_draw_and_is_hashed() -> None:
    a = compressors.create("random", seed=1)
    b = compressors.create("random", seed=2)
    assert a.config_hash != b.config_hash
    assert not np.array_equal(
        a.compress(tokens(), ratio=0.25).kept, b.compress(tokens(), ratio=0.25).kept
    )


def test_all_kept_when_budget_exceeds_tokens() -> None:
    tok = tokens(4)
    for method in POST_ENCODER:
        r = compressors.create(method).compress(tok, target_tokens=100)
        assert r.compressed_tokens == 16 and torch.equal(r.features, tok.features)
        assert any("exceeds" in n for n in r.notes)


def test_protected_tokens_always_kept() -> None:
    base = tokens(6)
    tok = VisualTokens(features=base.features, signals=base.signals, protected=(5, 17, 30))
    for method in POST_ENCODER:
        r = compressors.create(method).compress(tok, target_tokens=8)
        assert {5, 17, 30} <= set(r.kept.tolist()) and r.compressed_tokens <= 8
    with pytest.raises(ctxcomp.BudgetError, match="protected"):
        compressors.create("random").compress(tok, target_tokens=2)


def test_apply_carries_the_selection_over() -> None:
    tok = tokens()
    r = compressors.create("pooling").compress(tok, ratio=0.25)
    other = torch.arange(tok.n, dtype=torch.float64)[:, None]
    out = r.apply(other)
    assert out.shape == (r.compressed_tokens, 1)
    np.testing.assert_allclose(out[:, 0].numpy(), [g.mean() for g in r.groups()])
    with pytest.raises(ctxcomp.InputError, match="one row per input token"):
        r.apply(other[:5])


def test_canonical_renumbers_rows_by_first_token() -> None:
    a = torch.tensor([2, 2, -1, 0, 1, 0])
    np.testing.assert_array_equal(canonical(a).numpy(), [0, 0, -1, 1, 2, 1])


def test_registered_by_name_and_light() -> None:
    assert set(METHODS) <= set(compressors.names())
    assert compressors.entry("divprune").summary


def test_bad_inputs_are_named() -> None:
    p = compressors.create("divprune")
    with pytest.raises(ctxcomp.InputError, match="2-D"):
        p.compress(VisualTokens(features=torch.zeros(2, 3, 4)), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="tokens, dim"):
        p.compress(np.zeros((2, 3, 4, 5), np.float32), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="empty"):
        p.compress(np.zeros((0, 8), np.float32), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="NaN"):
        p.compress(np.full((4, 8), np.nan, np.float32), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="floating point"):
        p.compress(torch.zeros(4, 8, dtype=torch.long), ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="grid"):
        VisualTokens(features=torch.zeros(10, 4), grid=(3, 3))
    with pytest.raises(ctxcomp.InputError, match="signal 'cls_attention' has 3 scores"):
        VisualTokens(features=torch.zeros(10, 4), signals={CLS_ATTENTION: torch.zeros(3)})
    with pytest.raises(ctxcomp.InputError, match="VisualTokens or"):
        p.compress("not features", ratio=0.5)
    for ratio in (0.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ctxcomp.BudgetError, match="ratio"):
            p.compress(tokens(), ratio=ratio)
    with pytest.raises(ctxcomp.BudgetError, match="positive"):
        p.compress(tokens(), target_tokens=0)


def test_missing_signals_are_named() -> None:
    plain = VisualTokens(features=torch.randn(16, 8), grid=(4, 4))
    with pytest.raises(ctxcomp.InputError, match=r"vtc-cls needs the 'cls_attention'.*\[CLS\]"):
        compressors.create("vtc-cls").compress(plain, ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="fastv needs the 'llm_attention'"):
        compressors.create("fastv").compress(plain, ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="inside the vision encoder"):
        compressors.create("tome").compress(plain, ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="fastv layer"):
        compressors.create("fastv", layer=0)


def test_to_dict_is_json() -> None:
    import json

    r = compressors.create("pooling").compress(tokens(), ratio=0.25)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["compressed_tokens"] == r.compressed_tokens and d["merged"] is True
    assert len(d["kept"]) == len(d["sizes"]) == r.compressed_tokens
