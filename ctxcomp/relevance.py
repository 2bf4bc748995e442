"""Question relevance of sentences, and what a question asks for: the coarse stage's signals.

The bi-encoder's cosine between the question and each sentence (``rankers``) is the base.
:func:`combine` adds, where the options say so (values chosen on the development set,
docs/evals.md):

* ``lexical``: the IDF-weighted share of the question's content words found in the
  sentence (IDF over the request's sentences, words matched on a crude stem);
  a bi-encoder blurs rare names and numbers that a question spells out exactly;
* ``neighbor``: the better neighbouring sentence's score (same document): an answer often
  sits next to the sentence that names the subject ("He was born ...");
* ``document``: the sentence's document's best score: in a multi-document request, a
  sentence of a relevant document is worth more than a look-alike in a distractor;
* ``fewshot``: added to sentences holding a label line when the request looks like a
  classification few-shot prompt (``ctxcomp.fewshot``: label values repeat); there the
  "question" is the last example, and the label lines are what a reader needs.

:func:`wanted_kinds` reads the question's form: "when / what year / how many / how much"
asks for a number or date, "who / whom / whose" for a name; :func:`kind_mask` finds such
units, so the fine stage keeps them inside the sentences it keeps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .fewshot import fewshot_mask
from .stopwords import FUNCTION_WORDS

_WORD = re.compile(r"\w+")
STOPWORDS = FUNCTION_WORDS | {"whose"}
_NUMBER_Q = re.compile(
    r"\b(when|what year|which year|what date|how many|how much|how long|how old|how far|"
    r"how big|how large|how high|what number|what percentage|what version)\b",
    re.I,
)
_NAME_Q = re.compile(r"\b(who|whom|whose|which person|what name)\b", re.I)
_MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)


@dataclass(frozen=True)
class RelevanceOptions:
    """Weights of the signals added to the bi-encoder cosine (0 = off)."""

    lexical: float = 0.0
    neighbor: float = 0.0
    document: float = 0.0
    fewshot: float = 0.0

    def __post_init__(self) -> None:
        for k in ("lexical", "neighbor", "document", "fewshot"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"relevance {k} weight must be a number >= 0, got {v!r}")

    def fingerprint(self) -> dict[str, float]:
        fp = {"lexical": self.lexical, "neighbor": self.neighbor, "document": self.document}
        if self.fewshot:
            fp["fewshot"] = self.fewshot
        return fp


def _stem(w: str) -> str:
    """A crude stem: common English suffixes off, then the first six letters."""
    for suf in ("ing", "ed", "es", "s", "ly"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            break
    return w[:6]


def _terms(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def lexical_scores(question: str, sentences: Sequence[str]) -> np.ndarray:
    """IDF-weighted share of the question's content words present in each sentence."""
    q = set(_terms(question))
    out = np.zeros(len(sentences))
    if not q or not sentences:
        return out
    sets = [set(_terms(s)) & q for s in sentences]
    df = {t: 0 for t in q}
    for s in sets:
        for t in s:
            df[t] += 1
    n = len(sentences)
    idf = {t: math.log((n + 1) / (df[t] + 1)) + 1e-3 for t in q}
    total = sum(idf.values())
    for i, s in enumerate(sets):
        out[i] = sum(idf[t] for t in s) / total
    return out


def combine(
    question: str,
    sentences: Sequence[str],
    dense: np.ndarray,
    doc_of: np.ndarray,
    options: RelevanceOptions,
) -> np.ndarray:
    """Scores of ``sentences`` (of all documents, in order; ``doc_of`` their document)."""
    s = np.asarray(dense, np.float64).copy()
    if options.lexical and len(sentences):
        s += options.lexical * lexical_scores(question, sentences)
    if options.neighbor and s.size > 1:
        same = doc_of[1:] == doc_of[:-1]
        left = np.concatenate(([-np.inf], np.where(same, s[:-1], -np.inf)))
        right = np.concatenate((np.where(same, s[1:], -np.inf), [-np.inf]))
        best = np.maximum(left, right)
        s = s + options.neighbor * np.where(np.isfinite(best), np.maximum(best, 0.0), 0.0)
    if options.document and s.size:
        top = np.full(int(doc_of.max()) + 1, -np.inf)
        np.maximum.at(top, doc_of, s)
        s = s + options.document * top[doc_of]
    if options.fewshot and s.size:
        s = s + options.fewshot * fewshot_mask(sentences)
    return s


def wanted_kinds(question: str) -> frozenset[str]:
    """``{"number"}`` / ``{"name"}`` when the question's form asks for one."""
    out = set()
    if _NUMBER_Q.search(question):
        out.add("number")
    if _NAME_Q.search(question):
        out.add("name")
    return frozenset(out)


def kind_mask(text: str, starts: np.ndarray, ends: np.ndarray, kinds: frozenset[str]) -> np.ndarray:
    """Units of ``text`` that are of a wanted kind: numbers (a digit, or a month name) and
    names (capitalised words not at a sentence start)."""
    out = np.zeros(starts.size, dtype=bool)
    if not kinds or not starts.size:
        return out
    for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        w = text[a:b]
        if "number" in kinds and (any(c.isdigit() for c in w) or w.lower() in _MONTHS):
            out[k] = True
        elif "name" in kinds and w[:1].isupper() and w.lower() not in STOPWORDS:
            j = a - 1
            while j >= 0 and text[j] in " \t\"'(":
                j -= 1
            out[k] = j >= 0 and text[j] not in ".!?\n"
    return out
