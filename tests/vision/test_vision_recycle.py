"""Recycling dropped tokens (``recycle="merge"``) and ToMe's merge schedule: budget held,
indices sorted and valid, merge sizes summing to the input count, each dropped token in its
most similar row, the selection itself unchanged, determinism, named errors."""

from __future__ import annotations

import numpy as np
import pytest

import ctxcomp
from ctxcomp.core import compressors

torch = pytest.importorskip("torch")

from ctxcomp.vision.merge import schedule  # noqa: E402
from ctxcomp.vision.pruner import recycle_dropped  # noqa: E402
from ctxcomp.vision.tokens import CLS_ATTENTION, LLM_ATTENTION, VisualTokens  # noqa: E402

SELECTORS = ("random", "vtc-cls", "divprune", "fastv")


def tokens(n_side: int = 12, dim: int = 16, seed: int = 0, **kw: object) -> VisualTokens:
    g = torch.Generator().manual_seed(seed)
    n = n_side * n_side
    f = torch.randn(n, dim, generator=g)
    f[: n // 3] = f[0] + 0.05 * torch.randn(n // 3, dim, generator=g)
    sig = {CLS_ATTENTION: torch.rand(n, generator=g), LLM_ATTENTION: torch.rand(n, generator=g)}
    return VisualTokens(features=f, grid=(n_side, n_side), signals=sig, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", SELECTORS)
@pytest.mark.parametrize("budget", [{"ratio": 0.5}, {"ratio": 0.125}, {"target_tokens": 7}])
def test_recycling_holds_the_budget_and_accounts_for_every_token(method: str, budget: dict) -> None:
    tok = tokens()
    pure = compressors.create(method).compress(tok, **budget)
    r = compressors.create(method, recycle="merge").compress(tok, **budget)
    k = ctxcomp.Budget(**budget).resolve(tok.n)
    assert r.compressed_tokens == pure.compressed_tokens == k  # the budget, exactly
    assert r.dropped.size == 0 and r.sizes.sum() == tok.n and np.all(r.sizes >= 1)
    kept = r.kept
    assert np.all(np.diff(kept) > 0) and kept.min() >= 0 and kept.max() < tok.n
    # the selection is the pure method's: each selected token heads its own row
    rows = r.assignment[pure.kept]
    assert sorted(rows.tolist()) == list(range(k))
    # every row is the mean of its group
    x = tok.features.numpy()
    for j, g in enumerate(r.groups()):
        np.testing.assert_allclose(r.features[j].numpy(), x[g].mean(0), rtol=1e-5, atol=1e-5)
    # every dropped token went to the row (selected token) most like it
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sel = np.sort(pure.kept)
    for i in pure.dropped:
        best = sel[np.argmax(xn[sel] @ xn[i])]
        assert r.assignment[i] == r.assignment[best]
    assert r.config_hash != pure.config_hash and r.merged


@pytest.mark.parametrize("method", SELECTORS)
def test_recycling_is_deterministic(method: str) -> None:
    a = compressors.create(method, recycle="merge").compress(tokens(seed=4), ratio=0.25)
    b = compressors.create(method, recycle="merge").compress(tokens(seed=4), ratio=0.25)
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert torch.equal(a.features, b.features)


def test_protected_tokens_are_never_merged_into() -> None:
    tok = tokens(6, protected=(0, 7, 20))
    r = compressors.create("divprune", recycle="merge").compress(tok, target_tokens=8)
    assert r.compressed_tokens == 8 and r.sizes.sum() == tok.n
    for p in (0, 7, 20):
        assert r.sizes[r.assignment[p]] == 1


def test_recycle_dropped_respects_rows_and_unused_ids() -> None:
    metric = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9], [-1.0, 0.0]])
    a = torch.tensor([0, 2, -1, -1, -1])  # row 1 is not in use: nothing may go there
    out = recycle_dropped(a, metric)
    assert out.tolist()[:4] == [0, 2, 0, 2]
    assert out[4].item() in (0, 2)
    assert torch.equal(recycle_dropped(torch.tensor([0, 1]), metric[:2]), torch.tensor([0, 1]))


def test_recycle_errors_are_named() -> None:
    with pytest.raises(ctxcomp.InputError, match="recycle must be one of"):
        compressors.create("divprune", recycle="yes")
    for method in ("pooling", "tome"):
        with pytest.raises((ctxcomp.InputError, TypeError)):
            compressors.create(method, recycle="merge")
    with pytest.raises(ctxcomp.InputError, match="drops no tokens"):
        compressors.create("pooling", recycle="merge")


@pytest.mark.parametrize("tokens_", [16, 64, 256, 576])
@pytest.mark.parametrize("layers", [1, 3, 6, 9, 11])
def test_schedule_reaches_the_budget_whenever_halving_can(tokens_: int, layers: int) -> None:
    for keep in sorted({1, 2, tokens_ // 8, tokens_ // 4, tokens_ // 2, tokens_ - 1, tokens_}):
        s = schedule(tokens_, keep, layers)
        assert len(s) == layers and all(r >= 0 for r in s)
        cur = tokens_
        for r in s:
            assert r <= cur // 2  # bipartite matching merges at most half
            cur -= r
        reachable = tokens_
        for _ in range(layers):
            reachable -= reachable // 2
        assert cur == max(keep, reachable)
