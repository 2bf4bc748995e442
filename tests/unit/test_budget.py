import math

import pytest

from ctxcomp import Budget, BudgetError


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.0001, 2, math.nan, math.inf, "0.5", True])
def test_bad_ratio(ratio):
    with pytest.raises(BudgetError, match="ratio"):
        Budget(ratio=ratio)


@pytest.mark.parametrize("n", [0, -5, 1.5, "10", True])
def test_bad_target(n):
    with pytest.raises(BudgetError, match="target_tokens"):
        Budget(target_tokens=n)


def test_exactly_one():
    with pytest.raises(BudgetError, match="exactly one"):
        Budget()
    with pytest.raises(BudgetError, match="exactly one"):
        Budget(ratio=0.5, target_tokens=10)
    with pytest.raises(BudgetError, match="not both"):
        Budget.of(ratio=0.5, budget=Budget(ratio=0.3))


def test_resolve():
    assert Budget(ratio=0.33).resolve(1000) == 330
    assert Budget(ratio=1.0).resolve(7) == 7
    assert Budget(ratio=0.01).resolve(10) == 1  # never a zero budget
    assert Budget(target_tokens=50).resolve(10) == 50
