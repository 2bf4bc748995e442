"""Selection rules as capped bonuses: what may move a word past the model's own order, how
much of the budget it may spend, and what it spent.

The fine stage ranks units by their keep probability ``p``. Three rules may add to it:

* ``neighbor``: ``w * max(0, q - p)`` where ``q`` is the likelier neighbour's probability
  (same document, forced units are not neighbours): a weak word between kept words ("of"
  in "Bank of America") is cheaper to keep than an isolated one;
* ``repeat``: ``+c`` on the best-scored occurrence of every recurring *content* word (not a
  stopword, at least three letters or a digit): one occurrence of a recurring name or label
  survives; function words are never moved;
* ``label``: ``+c`` / ``+2c`` on few-shot label lines (``token_classifier._label_lines``).

Each rule gets at most ``share x target`` reader tokens (at least its best candidate): its candidates are taken best
first (by probability plus bonus) until that allowance is spent, the others get no bonus.
Units that got a bonus carry the rule's code (:data:`RULE_NAMES`) in ``UnitScores.rule``;
every other unit is ranked by ``p`` alone, so among them no kept unit has a lower ``p``
than a dropped one (``scripts/check_readability.py`` measures it). ``spent_notes`` reports
what each rule's units cost in the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .relevance import STOPWORDS

RULE_NONE, RULE_NEIGHBOR, RULE_REPEAT, RULE_LABEL = 0, 1, 2, 3
RULE_NAMES = {
    RULE_NEIGHBOR: "neighbor_weight",
    RULE_REPEAT: "repeat_cover",
    RULE_LABEL: "label_cover",
}


@dataclass(frozen=True)
class RuleShares:
    """Largest share of the target each rule's bonus units may cost (reader tokens)."""

    neighbor: float = 0.15
    repeat: float = 0.10
    label: float = 0.25

    def __post_init__(self) -> None:
        for k in ("neighbor", "repeat", "label"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise InputError(f"rule share {k} must be in [0, 1], got {v!r}")


def content_words(
    texts: list[str], doc: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Units that are not stopwords: three or more letters, or a digit."""
    out = np.zeros(starts.size, dtype=bool)
    for k, (d, a, b) in enumerate(zip(doc.tolist(), starts.tolist(), ends.tolist())):
        w = texts[d][a:b].casefold()
        out[k] = any(c.isdigit() for c in w) or (len(w) >= 3 and w not in STOPWORDS)
    return out


def neighbor_bonus(probs: np.ndarray, forced: np.ndarray, doc: np.ndarray, w: float) -> np.ndarray:
    if not w or probs.size < 2:
        return np.zeros(probs.size)
    pz = np.where(forced, 0.0, probs)
    same = doc[1:] == doc[:-1]
    left = np.concatenate(([0.0], np.where(same, pz[:-1], 0.0)))
    right = np.concatenate((np.where(same, pz[1:], 0.0), [0.0]))
    return w * np.maximum(0.0, np.maximum(left, right) - probs)


def capped(bonus: np.ndarray, probs: np.ndarray, cost: np.ndarray, allowance: float) -> np.ndarray:
    """``bonus`` kept on its best candidates (by probability + bonus) while their summed
    cost stays within ``allowance`` (the best one always: a rule may move one unit even
    under a tiny budget); zero elsewhere."""
    cand = np.flatnonzero(bonus > 0)
    out = np.zeros_like(bonus)
    if not cand.size or allowance <= 0:
        return out
    order = cand[np.lexsort((cand, -(probs[cand] + bonus[cand])))]
    ok = np.cumsum(cost[order]) <= allowance
    ok[0] = True
    out[order[ok]] = bonus[order[ok]]
    return out


def shape(
    probs: np.ndarray,
    bonuses: dict[int, np.ndarray],
    cost: np.ndarray,
    target: int,
    shares: RuleShares,
) -> tuple[np.ndarray, np.ndarray]:
    """Selection scores (``probs`` + capped bonuses) and each unit's rule code (the rule
    whose bonus is largest on it; 0 = ranked by its probability alone)."""
    share = {RULE_NEIGHBOR: shares.neighbor, RULE_REPEAT: shares.repeat, RULE_LABEL: shares.label}
    score = probs.astype(np.float64).copy()
    rule = np.zeros(probs.size, dtype=np.int8)
    best = np.zeros(probs.size)
    for code, b in bonuses.items():
        b = capped(b, probs, cost, share[code] * target)
        score += b
        win = b > best
        rule[win] = code
        best = np.maximum(best, b)
    return score, rule


def spent_notes(
    rule: np.ndarray, kept: np.ndarray, cost: np.ndarray, target: int, shares: RuleShares
) -> tuple[str, ...]:
    share = {RULE_NEIGHBOR: shares.neighbor, RULE_REPEAT: shares.repeat, RULE_LABEL: shares.label}
    out = []
    for code, name in RULE_NAMES.items():
        m = (rule == code) & kept
        if m.any():
            t = int(cost[m].sum())
            out.append(
                f"rule {name}: {int(m.sum())} units kept ahead of the model's order, "
                f"{t} tokens ({100 * t / max(target, 1):.1f}% of the budget; cap {100 * share[code]:.0f}%)"
            )
    return tuple(out)
