"""Offline proxies: span recall, ROUGE-L recall, answer log-likelihood."""

from __future__ import annotations

import math

import pytest

from evals.longbench.proxies import (
    AnswerLogLikelihood,
    answer_span_recall,
    contains_run,
    lcs_length,
    relative_ll,
)


def test_span_recall_short_answers():
    assert answer_span_recall("... the singer Bob Dylan recorded it.", ["Bob Dylan"]) == 1.0
    assert answer_span_recall("Dylan, Bob: no.", ["Bob Dylan"]) == 0.0  # not contiguous
    assert answer_span_recall("nothing here", ["Bob Dylan", "Dylan"]) == 0.0
    assert answer_span_recall("It was Dylan.", ["Bob Dylan", "Dylan"]) == 1.0  # max over golds
    assert answer_span_recall("THE answer: 10.", ["10"]) == 1.0
    assert answer_span_recall("100 apples", ["10"]) == 0.0  # whole tokens only
    assert answer_span_recall("anything", ["", "  "]) is None


def test_span_recall_long_answers_use_lcs_recall():
    ans = "the committee approved the new budget after a long debate"  # 8 normalised tokens
    ctx = "committee members approved a budget; debate was long"
    # answer tokens: committee approved new budget after long debate -> wait, articles dropped:
    # [committee, approved, new, budget, after, long, debate] (7); LCS with context
    # [committee, members, approved, budget, debate, was, long] = committee approved budget debate = 4
    assert answer_span_recall(ctx, [ans], short_max=5) == pytest.approx(4 / 7)
    assert answer_span_recall(ans, [ans], short_max=5) == 1.0
    assert answer_span_recall("", [ans], short_max=5) == 0.0


def test_lcs_and_runs():
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert lcs_length([], ["a"]) == 0
    assert contains_run(["a", "b", "c"], ["b", "c"]) and not contains_run(["a", "b"], ["b", "a"])


def test_span_recall_chinese_characters():
    assert answer_span_recall("他说：北京是首都。", ["北京"], lang="zh") == 1.0
    assert answer_span_recall("他说：上海。", ["北京"], lang="zh") == 0.0


def test_relative_ll():
    assert relative_ll(-1.0, -1.0, -3.0) == 1.0
    assert relative_ll(-3.0, -1.0, -3.0) == 0.0
    assert relative_ll(-2.0, -1.0, -3.0) == 0.5
    assert relative_ll(-2.0, -3.0, -3.0) is None and relative_ll(None, -1.0, -2.0) is None


def test_log_likelihood_tiny_model_finite_and_deterministic(tiny_lm_dir):
    ll = AnswerLogLikelihood(tiny_lm_dir, window=128)
    a = ll("Context: the sky is blue. Question: colour? Answer:", "blue")
    b = ll("Context: the sky is blue. Question: colour? Answer:", "blue")
    assert math.isfinite(a) and a < 0 and a == b
    long_prompt = "filler words " * 400  # longer than the window: middle-truncated
    assert math.isfinite(ll(long_prompt, "blue"))
    assert math.isfinite(ll("", "blue"))
    assert math.isnan(ll("x", ""))
