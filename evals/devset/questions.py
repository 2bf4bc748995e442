"""Questions without an LLM: a sentence of the document, an answer span cut out of it, and a
search-engine-style question made of some of the sentence's other content words.

Answer kinds: ``number`` (dates, years, quantities, versions), ``name`` (runs of capitalised
words, code identifiers in markup) and ``phrase`` (a two- or three-word content-word run).
The question is a wh-word chosen by kind followed by two or three of the sentence's
content words (lower-cased, in their order, the answer's own words removed), half the time
one content word of a neighbouring sentence, and for Wikipedia sections, half the time,
the section title (as Natural Questions queries name their page's subject). Biases (docs/evals.md): the question always shares words with the
answer's sentence (real questions paraphrase more), the answer is an exact span of that one
sentence, and no question needs two sentences.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ctxcomp.stopwords import FUNCTION_WORDS
from evals.longbench.proxies import proxy_tokens

# a cue word must name something: number words, modals and abbreviations do not
STOPWORDS = FUNCTION_WORDS | set(
    [
        "e.g",
        "etc",
        "first",
        "i.e",
        "many",
        "may",
        "might",
        "much",
        "must",
        "new",
        "one",
        "per",
        "shall",
        "two",
        "us",
        "via",
    ]
)
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
)
NUMBER = re.compile(
    rf"\b(?:\d{{1,2}} {_MONTH} \d{{4}}|{_MONTH} \d{{1,2}}, \d{{4}}|{_MONTH} \d{{4}}"
    r"|\d+(?:\.\d+){1,2}|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
    r"(?: ?(?:%|percent|million|billion|km|kilometres|kilometers|miles|metres|meters|years|"
    r"people|species|inhabitants|ms|seconds|times|MB|GB|bytes))?)\b"
)
NAME = re.compile(
    r"(?<![\w.])(?:[A-Z][\w'’&-]*[a-z0-9][\w'’&-]*|[A-Z]{2,})"
    r"(?:(?: (?:of|de|del|da|von|van|der|the|and|for|la|le|du))? (?:[A-Z][\w'’&-]*|[A-Z]{2,}))*"
)
CODE = re.compile(r"``?([A-Za-z_][\w.]*(?:\(\))?)``?")
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d[\d.,]*")
SENT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"(`])")


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    kind: str
    sentence: str


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENT.split(text) if s.strip()]


def prose_sentences(page: str) -> list[str]:
    """Sentences of the prose lines of a markup page: not inside ``` fences, not indented
    (reST literal blocks), not table rows, and mostly words."""
    out: list[str] = []
    fence = False
    para: list[str] = []

    def flush() -> None:
        if para:
            out.extend(sentences(" ".join(para)))
            para.clear()

    for line in page.split("\n"):
        s = line.strip()
        if s.startswith("```") or s.startswith("~~~"):
            fence = not fence
            flush()
            continue
        if fence or not s or line[:1] in (" ", "\t") or s[0] in "|+>#=-*.:[!<" or "|" in s:
            flush()
            continue
        para.append(s)
    flush()
    return out


_DETERMINERS = frozenset(
    [
        "the",
        "a",
        "an",
        "his",
        "her",
        "its",
        "their",
        "this",
        "that",
        "these",
        "those",
        "our",
        "your",
    ]
)


def _content(w: str) -> bool:
    return w[0].isalpha() and w.lower() not in STOPWORDS and len(w) >= 3


def answer_candidates(sentence: str, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(answer, kind) spans of ``sentence``; names never at the sentence's first word."""
    out: list[tuple[str, str]] = []
    if "number" in kinds:
        out += [(m.group(0), "number") for m in NUMBER.finditer(sentence)]
    if "name" in kinds:
        for m in NAME.finditer(sentence):
            if (
                m.start() > 0
                and m.group(0).split()[0].lower() not in STOPWORDS
                and not re.search(r"[\"“”]", m.group(0))
            ):
                out.append((m.group(0), "name"))
        out += [(m.group(1), "name") for m in CODE.finditer(sentence) if len(m.group(1)) > 2]
    if "phrase" in kinds:
        # a noun-phrase-like run: 1-3 content words right after a determiner, ending
        # before a stopword or punctuation ("the [disputation]", "a [core API] change")
        words = [(m.group(0), m.start(), m.end()) for m in WORD.finditer(sentence)]
        for i in range(1, len(words)):
            if words[i - 1][0].lower() not in _DETERMINERS:
                continue
            j = i
            while j < len(words) and j - i < 3 and _content(words[j][0]):
                j += 1
            if j == i or (
                j < len(words) and _content(words[j][0]) and words[j][1] == words[j - 1][2] + 1
            ):
                continue  # no content word, or the run goes on past three words
            a, b = words[i][1], words[j - 1][2]
            if len(sentence[a:b]) >= 5 and re.fullmatch(r"[\w' -]+", sentence[a:b]):
                out.append((sentence[a:b], "phrase"))
    return out


def content_terms(sentence: str) -> list[str]:
    return [
        w.lower()
        for w in WORD.findall(sentence)
        if len(w) > 2 and w.lower() not in STOPWORDS and w[0].isalpha()
    ]


def count_runs(haystack: list[str], needle: list[str]) -> int:
    n = len(needle)
    if not n:
        return 0
    first = needle[0]
    return sum(
        1
        for i in range(len(haystack) - n + 1)
        if haystack[i] == first and haystack[i : i + n] == needle
    )


def wh_word(answer: str, kind: str) -> str:
    if kind == "number":
        if re.search(_MONTH, answer) or re.fullmatch(r"1[5-9]\d\d|20[0-4]\d", answer):
            return "when"
        if re.fullmatch(r"\d+(?:\.\d+){1,2}", answer):
            return "what version"
        return "how many" if re.search(r"[a-z%]", answer) is None else "how much"
    return "who or what" if kind == "name" else "what"


def make_question(
    sentence: str,
    answer: str,
    kind: str,
    rng: random.Random,
    title: str | None = None,
    context_words: list[str] | None = None,
) -> Question | None:
    """A question for ``answer`` in ``sentence``; None when too few other content words."""
    i = sentence.find(answer)
    if i < 0:
        return None
    rest = sentence[:i] + " " + sentence[i + len(answer) :]
    ans_words = {w.lower() for w in WORD.findall(answer)}
    words: list[str] = []
    for w in WORD.findall(rest):
        lw = w.lower().strip("'’-.,")
        if len(lw) < 2 or lw in STOPWORDS or lw in ans_words or lw in words:
            continue
        words.append(lw)
    if len(words) < 3:
        return None
    # few of the sentence's words (real questions share some words with the evidence,
    # not most of them): two or three, sometimes one more from a neighbouring sentence
    k = rng.choice((2, 2, 3))
    keep = sorted(rng.sample(range(len(words)), min(k, len(words))))
    body = [words[j] for j in keep]
    if context_words and rng.random() < 0.5:
        extra = [w for w in context_words if w not in body and w not in ans_words]
        if extra:
            body.append(rng.choice(extra))
    if title and rng.random() < 0.5:
        tw = " ".join(WORD.findall(title.lower()))
        if tw and tw not in " ".join(body) and not (set(tw.split()) & ans_words):
            body = [tw, *body]
    return Question(f"{wh_word(answer, kind)} {' '.join(body)}?", answer, kind, sentence)


def unique_in(context_tokens: list[str], answer: str) -> bool:
    """The answer occurs exactly once (as a run of normalised tokens) in the context."""
    at = proxy_tokens(answer, "en")
    return 0 < len(at) <= 5 and count_runs(context_tokens, at) == 1
