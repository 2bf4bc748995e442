"""Selection rules as capped bonuses (ctxcomp.rules); the readability invariant with the
embedded default is in tests/model/test_rules_readability.py."""

import numpy as np
import pytest

from ctxcomp.errors import InputError
from ctxcomp.rules import (
    RULE_LABEL,
    RULE_NEIGHBOR,
    RULE_REPEAT,
    RuleShares,
    capped,
    content_words,
    neighbor_bonus,
    shape,
    spent_notes,
)


def test_capped_takes_best_candidates_within_allowance():
    bonus = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    probs = np.array([0.1, 0.5, 0.9, 0.3, 0.2])
    cost = np.array([2, 2, 1, 2, 2])
    out = capped(bonus, probs, cost, allowance=4)
    assert out.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]  # the two best candidates, 4 tokens
    # a rule always moves its best candidate, even under a tiny allowance
    assert capped(bonus, probs, cost, allowance=0.5).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert not capped(np.zeros(5), probs, cost, 10).any()


def test_neighbor_bonus_only_raises_weak_words_between_strong_ones():
    probs = np.array([0.9, 0.1, 0.9, 0.2, 0.05, 0.3])
    forced = np.array([False, False, False, False, False, True])
    doc = np.array([0, 0, 0, 0, 1, 1])
    b = neighbor_bonus(probs, forced, doc, 0.5)
    assert b[1] == pytest.approx(0.4)  # 0.5 * (0.9 - 0.1)
    assert b[0] == 0.0 and b[2] == 0.0  # never lowered, never raised past a weaker neighbour
    assert b[4] == 0.0  # no neighbour across documents; forced units are no neighbours
    assert (b >= 0).all()


def test_content_words_excludes_stopwords():
    text = "to the April 9 observing is of Kelvaig"
    starts, ends = [], []
    pos = 0
    for w in text.split():
        a = text.index(w, pos)
        starts.append(a)
        ends.append(a + len(w))
        pos = a + len(w)
    m = content_words([text], np.zeros(len(starts), np.int64), np.array(starts), np.array(ends))
    assert [w for w, k in zip(text.split(), m) if k] == ["April", "9", "observing", "Kelvaig"]


def test_shape_caps_each_rule_and_reports_spending():
    n = 20
    probs = np.linspace(0.9, 0.05, n)
    cost = np.ones(n, np.int64)
    rep = np.zeros(n)
    rep[10:] = 1.0  # ten candidates
    lab = np.zeros(n)
    lab[[3, 4]] = 2.0
    shares = RuleShares(neighbor=0.0, repeat=0.2, label=0.5)
    score, rule = shape(probs, {RULE_REPEAT: rep, RULE_LABEL: lab}, cost, target=10, shares=shares)
    assert (rule == RULE_REPEAT).sum() == 2  # 20% of a 10-token target
    assert set(np.flatnonzero(rule == RULE_REPEAT)) == {10, 11}  # the best-scored ones
    assert (rule == RULE_LABEL).sum() == 2
    assert np.allclose(score[rule == 0], probs[rule == 0])  # no rule: the model's order
    kept = score >= np.sort(score)[-10]
    notes = spent_notes(rule, kept, cost, 10, shares)
    assert any(n.startswith("rule repeat_cover: 2 units") and "cap 20%" in n for n in notes)
    assert not any("neighbor" in n for n in notes)
    assert RULE_NEIGHBOR not in set(rule.tolist())
    with pytest.raises(InputError, match="rule share"):
        RuleShares(repeat=1.5)
