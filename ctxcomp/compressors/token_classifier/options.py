"""The token classifier's options: one declaration of everything besides the model that
decides what is kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...budget_search import OVERFLOW_POLICIES
from ...errors import InputError
from ...rules import RuleShares
from ...text.protect import Protection

DEFAULT_FORCE_TOKENS: tuple[str, ...] = ("\n", "?", "!", ".")
DEFAULT_SCORE_MEMO_BYTES = 32 << 20  # ~4M tokens of window probabilities (4 B + 4 B key each)
DEFAULT_CHUNK_END_TOKENS: tuple[str, ...] = (".", "\n")
MODES = ("global", "per_chunk")


@dataclass(frozen=True)
class TokenClassifierOptions:
    """Everything besides the model that decides what is kept."""

    force_tokens: tuple[str, ...] = DEFAULT_FORCE_TOKENS
    keep_digits: bool = False
    drop_consecutive: bool = True
    token_to_word: str = "mean"  # or "first"
    mode: str = "global"  # or "per_chunk" (LLMLingua-2's per-window threshold)
    chunk_end_tokens: tuple[str, ...] = DEFAULT_CHUNK_END_TOKENS
    protection: Protection = field(default_factory=Protection)
    separator: str = "\n\n"
    # Selection score = (1 - w) * own probability + w * the likelier neighbour's (within the
    # document; forced units are not neighbours). w > 0 keeps phrases whole: a word next to
    # a kept word is cheaper to keep than one alone (names, dates, "Bank of America").
    # 0 = LLMLingua-2's rule; the shipped default model sets 0.5 (docs/model-card.md).
    neighbor_weight: float = 0.0
    # Added to the selection score of the best-scored occurrence of every word that occurs
    # more than once in the request (case-folded letters-and-digits words): a recurring
    # word keeps at least one occurrence before the budget goes to rarer words' second
    # ones. Few-shot labels, recurring names and terms repeat; an answer that is one of
    # them needs it once. 0 = off.
    repeat_cover: float = 0.0
    # Added to the selection score of the words of "label lines": short "Field: value"
    # lines (a value of at most LABEL_MAX_WORDS words) of a field that starts at least three
    # lines of the request with values of at most that median length ("Type: Other
    # location", "Sentiment: negative", "Answer: Paris" in a few-shot prompt; not its
    # "Question: ..." lines). The best-scored occurrence of each distinct line gets +2c; with
    # scope "all" every other occurrence +c (each label once before any twice, then all of
    # them). The label lines are what a reader copies the answer's format and label set from,
    # and they are cheap next to the examples. 0 = off.
    label_cover: float = 0.0
    label_scope: str = "best"  # or "all"
    # When force tokens and protected spans alone exceed the budget: "degrade" keeps or drops
    # each protected span whole and, if still needed, keeps force tokens only after kept
    # words (every decision in the result's notes); "error" raises BudgetError.
    on_overflow: str = "degrade"

    # the most of the target each rule's bonus units may cost (ctxcomp.rules)
    rule_shares: RuleShares = field(default_factory=RuleShares)

    def __post_init__(self) -> None:
        if self.on_overflow not in OVERFLOW_POLICIES:
            raise InputError(
                f"on_overflow must be one of {OVERFLOW_POLICIES}, got {self.on_overflow!r}"
            )
        if isinstance(self.rule_shares, Mapping):  # from a JSON/TOML config
            object.__setattr__(self, "rule_shares", RuleShares(**self.rule_shares))
        if not isinstance(self.rule_shares, RuleShares):
            raise InputError(f"rule_shares must be a RuleShares, got {self.rule_shares!r}")
        if not 0.0 <= float(self.neighbor_weight) < 1.0:
            raise InputError(f"neighbor_weight must be in [0, 1), got {self.neighbor_weight!r}")
        if not 0.0 <= float(self.repeat_cover) <= 1.0:
            raise InputError(f"repeat_cover must be in [0, 1], got {self.repeat_cover!r}")
        if not 0.0 <= float(self.label_cover) <= 1.0:
            raise InputError(f"label_cover must be in [0, 1], got {self.label_cover!r}")
        if self.label_scope not in ("best", "all"):
            raise InputError(f"label_scope must be 'best' or 'all', got {self.label_scope!r}")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.token_to_word not in ("mean", "first"):
            raise InputError(f"token_to_word must be 'mean' or 'first', got {self.token_to_word!r}")
        for t in self.force_tokens:
            if not isinstance(t, str) or not t:
                raise InputError(f"force tokens must be non-empty strings, got {t!r}")


def norm_overrides(kw: dict[str, Any]) -> dict[str, Any]:
    allowed = set(TokenClassifierOptions.__dataclass_fields__)
    bad = set(kw) - allowed
    if bad:
        raise InputError(f"unknown option(s) {sorted(bad)}; known: {sorted(allowed)}")
    out = dict(kw)
    for k in ("force_tokens", "chunk_end_tokens"):
        if k in out and out[k] is not None:
            if isinstance(out[k], str):
                raise InputError(f"{k} must be a sequence of strings, not one string")
            out[k] = tuple(out[k])
    return out
