"""Sentence-relevance signals and question kinds (ctxcomp.relevance): model-free."""

import numpy as np
import pytest

from ctxcomp.errors import InputError
from ctxcomp.relevance import RelevanceOptions, combine, kind_mask, lexical_scores, wanted_kinds


def test_lexical_scores_weight_rare_question_words():
    sents = [
        "The observatory opened in 1962.",
        "The observatory hosts school visits.",
        "Kelvaig is a fishing town.",
        "Nothing here matches.",
    ]
    s = lexical_scores("when did the Kelvaig observatory open", sents)
    assert s[2] > s[1]  # "Kelvaig" is rarer than "observatory"
    assert s[0] > s[1]  # observatory + open(ed): first five letters match
    assert s[3] == 0.0
    assert ((s >= 0) & (s <= 1)).all()
    assert not lexical_scores("the of and", sents).any()  # stopwords only


def test_combine_adds_neighbor_and_document_signals():
    dense = np.array([0.1, 0.8, 0.1, 0.2, 0.2])
    doc = np.array([0, 0, 0, 1, 1])
    plain = combine("q", ["a"] * 5, dense, doc, RelevanceOptions())
    assert np.allclose(plain, dense)
    nb = combine("q", ["a"] * 5, dense, doc, RelevanceOptions(neighbor=0.5))
    assert nb[0] == pytest.approx(0.5) and nb[2] == pytest.approx(0.5)  # next to the 0.8
    assert nb[3] == pytest.approx(0.3)  # neighbours only within a document
    dc = combine("q", ["a"] * 5, dense, doc, RelevanceOptions(document=1.0))
    assert dc[0] - dense[0] == pytest.approx(0.8) and dc[3] - dense[3] == pytest.approx(0.2)
    with pytest.raises(InputError, match="lexical"):
        RelevanceOptions(lexical=-1)


def test_wanted_kinds_and_kind_mask():
    assert wanted_kinds("When was it founded?") == {"number"}
    assert wanted_kinds("how many visitors a year") == {"number"}
    assert wanted_kinds("Who discovered the variable star?") == {"name"}
    assert wanted_kinds("what is the dark sky like") == frozenset()
    text = "In April 2021 a team led by Tomas Breckan found it. Later it was confirmed."
    words = text.split()
    starts, pos = [], 0
    for w in words:
        a = text.index(w, pos)
        starts.append(a)
        pos = a + len(w)
    st = np.array(starts)
    en = st + np.array([len(w) for w in words])
    num = kind_mask(text, st, en, frozenset({"number"}))
    assert [w for w, m in zip(words, num) if m] == ["April", "2021"]
    name = kind_mask(text, st, en, frozenset({"name"}))
    assert [w for w, m in zip(words, name) if m] == [
        "April",
        "Tomas",
        "Breckan",
    ]  # not "In", "Later"
    assert not kind_mask(text, st, en, frozenset()).any()
