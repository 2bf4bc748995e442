"""Few-shot requests: label lines, and whether a request is a classification few-shot prompt.

A *label line* is a short ``Field: value`` line (a value of at most :data:`LABEL_MAX_WORDS`
words) of a field that starts at least :data:`LABEL_MIN_FIELD_LINES` lines of the request
with values of at most that median length: a few-shot prompt's ``Type: Location``,
``Answer: Paris``, a chat log's short turns — not its ``Question: ...`` lines.

A request *looks few-shot* when its label lines repeat their values: some label field has
at least :data:`FEWSHOT_MIN_LINES` lines and at most half as many distinct values as lines
(``Type: city`` x 40, ``Type: river`` x 12 ...). Chat turns and ``Answer:`` lines of
extractive examples rarely repeat, so they do not make a request few-shot. In such a request
the "question" is the last example, so question relevance says little about which lines
matter; the label lines are what a reader copies the label set and the format from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

LABEL_MAX_WORDS = 6
LABEL_MIN_FIELD_LINES = 3
FEWSHOT_MIN_LINES = 5
FIELD_LINE = re.compile(r"(?m)^[ \t]*([^\W\d_][\w ()/'-]{0,30}?)[ \t]*:[ \t]*(\S[^\n]*?)[ \t]*$")


def field_lines(texts: Sequence[str]) -> list[tuple[int, int, int, str, str]]:
    """Every ``Field: value`` line: (text index, start, end, field casefolded, value)."""
    out: list[tuple[int, int, int, str, str]] = []
    for di, text in enumerate(texts):
        if ":" in text:
            for m in FIELD_LINE.finditer(text):
                field = " ".join(m.group(1).casefold().split())
                out.append((di, m.start(1), m.end(2), field, " ".join(m.group(2).split())))
    return out


def label_lines(texts: Sequence[str]) -> list[tuple[int, int, int, str, str]]:
    """The label lines of a request (see the module docstring)."""
    lines = field_lines(texts)
    sizes: dict[str, list[int]] = {}
    for _, _, _, f, v in lines:
        sizes.setdefault(f, []).append(len(v.split()))
    fields = {
        f
        for f, n in sizes.items()
        if len(n) >= LABEL_MIN_FIELD_LINES and float(np.median(n)) <= LABEL_MAX_WORDS
    }
    return [x for x in lines if x[3] in fields and len(x[4].split()) <= LABEL_MAX_WORDS]


def fewshot_fields(texts: Sequence[str]) -> frozenset[str]:
    """Label fields whose values repeat (the request looks few-shot when not empty)."""
    values: dict[str, list[str]] = {}
    for _, _, _, f, v in label_lines(texts):
        values.setdefault(f, []).append(v.casefold())
    return frozenset(
        f
        for f, vs in values.items()
        if len(vs) >= FEWSHOT_MIN_LINES and len(set(vs)) * 2 <= len(vs)
    )


def fewshot_mask(texts: Sequence[str]) -> np.ndarray:
    """Texts (e.g. the sentences of a request) holding a label line of a few-shot field."""
    fields = fewshot_fields(texts)
    out = np.zeros(len(texts), dtype=bool)
    if fields:
        for di, _, _, f, _ in label_lines(texts):
            if f in fields:
                out[di] = True
    return out
