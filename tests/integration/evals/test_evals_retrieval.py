"""Sentence-retrieval baseline: selection under an exact budget, in original order."""

import ctxcomp
from evals.longbench.retrieval import select_sentences, sentence_units


def test_select_sentences_budget_order_and_priority():
    tok = ctxcomp.get_tokenizer("cl100k_base")
    text = " ".join(
        f"Sentence number {i} talks about topic {i * 7} at some length here." for i in range(60)
    )
    text += "\n\nA final paragraph."
    units = sentence_units(text)
    assert "".join(units) == text  # nothing lost, nothing added
    order = list(range(len(units)))[::-1]  # the last sentences are the most wanted
    for budget in (5, 40, 200, 10_000):
        out = select_sentences(units, order, budget, tok)
        assert tok.count(out) <= budget
        kept = [u for u in units if u in out]
        assert "".join(kept) == out  # whole sentences, original order
        if budget >= tok.count(units[-1]):
            assert out.endswith("A final paragraph.")  # the top-ranked one is kept
    assert select_sentences(units, order, 10_000, tok) == text
