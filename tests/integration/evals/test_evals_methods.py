"""Baselines: budgets held, determinism, middle truncation."""

from __future__ import annotations

import pytest

import ctxcomp
from ctxcomp import Document
from evals.longbench.data import Item
from evals.longbench.methods import Head, RandomDrop, keep_within_budget, lexical_units, make_method
from evals.longbench.tokens import get_tokenizer
from evals.longbench.truncation import middle_truncate, middle_truncate_ids


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer("cl100k_base")


def _item(ctx: str) -> Item:
    return Item("hotpotqa", "hotpotqa-t", ctx, "Who?", ["Bob Dylan"])


def _run(m, text: str, budget: int) -> str:
    """A method through the library's contract, as the runner calls it."""
    return m.compress(Document(text, {"item": _item(text)}), target_tokens=budget).text


TEXT = " ".join(
    f"Sentence {i} mentions word{i % 17} and 12,345 things; 北京{i}." for i in range(400)
)


def test_middle_truncation_ids():
    ids = list(range(10))
    assert middle_truncate_ids(ids, 20) == ids
    assert middle_truncate_ids(ids, 4) == [0, 1, 8, 9]
    assert middle_truncate_ids(ids, 5) == [0, 1, 8, 9]  # half = int(5/2) = 2, as pred.py


def test_middle_truncation_text(tok):
    out = middle_truncate(TEXT, tok, 100)
    ids = tok.encode(TEXT)
    assert out == tok.decode(ids[:50]) + tok.decode(ids[-50:])
    assert out.startswith("Sentence 0") and out.endswith("北京399.")
    assert middle_truncate("short", tok, 100) == "short"


@pytest.mark.parametrize("budget", [1, 50, 333, 2000])
def test_random_drop_holds_budget_and_is_seeded(tok, budget):
    m = RandomDrop()
    a = _run(m, TEXT, budget)
    b = _run(m, TEXT, budget)
    assert a == b
    assert tok.count(a) <= budget
    assert tok.count(a) >= 0.8 * budget  # uses the budget, not just stays under it
    # order kept: output words are a subsequence of the input units
    units = lexical_units(TEXT)
    it = iter(units)
    assert all(any(u == v for v in it) for u in lexical_units(a)) or budget == 1
    other = _run(RandomDrop(seed=1), TEXT, budget)
    assert other != a or budget == 1


def test_head_holds_budget(tok):
    out = _run(Head(), TEXT, 100)
    assert tok.count(out) <= 100 and TEXT.startswith(out)


def test_keep_within_budget_exact(tok):
    units = lexical_units(TEXT)
    out = keep_within_budget(units, list(range(len(units))), 123, tok)
    assert tok.count(out) <= 123 and TEXT.startswith(out)


def test_lexical_units_roundtrip():
    s = "Hello,  world!\n北京欢迎你 ok"
    assert "".join(lexical_units(s)) == s
    assert "北" in lexical_units(s)


def test_registry(tok):
    assert _run(make_method("original", window=10), TEXT, 5) == middle_truncate(TEXT, tok, 10)
    assert _run(make_method("no_context"), TEXT, 5) == ""
    assert make_method("original").budget_free and not make_method("head").budget_free
    with pytest.raises(ValueError, match="unknown method"):
        make_method("bogus")
    assert make_method("random:3").spec == "random:3"
    assert make_method("random").config_hash != make_method("random:3").config_hash
    r = make_method("head").compress(Document(TEXT, {"item": _item(TEXT)}), target_tokens=50)
    assert r.config_hash == make_method("head").config_hash and r.compressed_tokens <= 50
    assert isinstance(make_method("head"), ctxcomp.core.Compressor)  # the library's contract


def test_selective_context_tiny_lm(tiny_lm_dir, tok):
    m = make_method(f"selective_context:{tiny_lm_dir}")
    text = TEXT[:3000]
    a = _run(m, text, 80)
    assert tok.count(a) <= 80 and a
    assert _run(m, text, 80) == a
