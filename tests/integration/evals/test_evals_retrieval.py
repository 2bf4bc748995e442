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


def test_sentence_retrieval_through_the_method_contract():
    """``sentret`` as the runners call it (a Document carrying the item, a token target):
    whole sentences in order, under the budget, the one the question is about kept."""
    from ctxcomp import Document
    from evals.longbench.data import Item
    from evals.longbench.retrieval import SentenceRetrieval

    topics = [
        "Bread rises because yeast ferments the sugars in the dough.",
        "The tax office closes early on the last Friday of every month.",
        "The ferry to the island leaves the harbour every morning at dawn.",
        "Violins are usually strung with gut, steel or synthetic strings.",
        "Glaciers carve U-shaped valleys as they move down a mountain.",
    ]
    text = " ".join(f"Note {k}: {t}" for k in range(6) for t in topics)
    item = Item(task="hotpotqa", id="t", context=text, input="When does the ferry leave?",
                answers=["dawn"])  # fmt: skip
    m = SentenceRetrieval()
    tok = ctxcomp.get_tokenizer("cl100k_base")
    out = m.compress(Document(text, {"item": item}), target_tokens=40, question=item.input)
    assert out.compressed_tokens == tok.count(out.text) <= 40
    assert "ferry" in out.text
    units = sentence_units(text)
    assert "".join(u for u in units if u in out.text) == out.text  # whole sentences, in order
    assert m.config_hash == SentenceRetrieval().config_hash
