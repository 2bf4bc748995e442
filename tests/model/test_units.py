"""Selection units are whole grapheme clusters, and keep markers never swallow kept words
(issue 14, part 4)."""

from __future__ import annotations

import numpy as np
import pytest
import regex

import ctxcomp
from ctxcomp.text.units import grapheme_starts, snap_to_graphemes
from tests.support.invariants import check_result

WORDS = [
    "cafe\u0301",
    "नमस्ते",
    "क्षत्रिय",
    "e\u0301te\u0301",
    "naïve",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "🇫🇷",
]
TEXT = " ".join(
    f"The {WORDS[i % len(WORDS)]} word number {i} appears here{'.' if i % 3 else ','}"
    for i in range(90)
)


def _bounds(text: str) -> set[int]:
    out, pos = {len(text)}, 0
    for g in regex.findall(r"\X", text):
        out.add(pos)
        pos += len(g)
    return out


def test_grapheme_starts():
    assert grapheme_starts("plain ascii") is None
    assert grapheme_starts("Съешь «это» 北京 – “quoted”") is None  # one cluster per character
    assert grapheme_starts("cafe\u0301").tolist() == [0, 1, 2, 3]
    s = grapheme_starts("नमस्ते")
    assert s is not None and s[-1] < len("नमस्ते") - 1  # the vowel sign joins its consonant
    assert grapheme_starts("a👍🏽b").tolist() == [0, 1, 3]
    starts, ends = snap_to_graphemes(np.array([0, 3]), np.array([3, 4]), np.array([0, 1, 2, 3]), 5)
    assert starts.tolist() == [0, 3] and ends.tolist() == [3, 5]


@pytest.mark.parametrize("which", ["tiny_bert_compressor", "tiny_xlmr_compressor"])
@pytest.mark.parametrize("ratio", [0.2, 0.4, 0.7])
def test_units_are_grapheme_clusters(request, which, ratio):
    comp = request.getfixturevalue(which)
    reader = ctxcomp.get_tokenizer("cl100k_base")
    r = comp.compress(TEXT, ratio=ratio)
    check_result(r, [TEXT], reader)
    bounds = _bounds(TEXT)
    for s in r.spans:
        assert s.start in bounds and s.end in bounds, TEXT[s.start - 3 : s.end + 3]
    sc = r.scores[0]
    for a, b in zip(sc.starts.tolist(), sc.ends.tolist()):
        assert a in bounds and b in bounds, TEXT[a:b]
    # the visible failures of splitting: an accent or a vowel sign lost at a run's end
    out = r.text
    assert all(out[m.end()] == "\u0301" for m in regex.finditer("cafe", out))
    assert all(out[m.end()] == "े" for m in regex.finditer("नमस्त", out))


def test_keep_marker_never_swallows_kept_words(tiny_xlmr_compressor):
    """A sentencepiece tokenizer reads "<ctxcomp:keep>kept" as one word: the first and last
    kept words were excluded with the markers."""
    reader = ctxcomp.get_tokenizer("cl100k_base")
    text = (
        "Some words before this. <ctxcomp:keep>kept words here</ctxcomp:keep> and the end "
        "of the text with more words to drop, many more words."
    )
    for ratio in (0.3, 0.6, 0.9):
        r = tiny_xlmr_compressor.compress(text, ratio=ratio)
        check_result(r, [text], reader)
        assert "kept words here" in r.text
        assert "ctxcomp" not in r.text
