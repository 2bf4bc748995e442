"""Few-shot detection (ctxcomp.fewshot) and the relevance signal built on it: model-free."""

import numpy as np

from ctxcomp.fewshot import fewshot_fields, fewshot_mask, label_lines
from ctxcomp.relevance import RelevanceOptions, combine

LABELS = ["city", "river", "city", "poet", "city", "river", "poet", "city"]


def fewshot_sentences() -> list[str]:
    out = []
    for i, lab in enumerate(LABELS):
        out += [f"Text: Example number {i} is described here at some length.", f"Type: {lab}"]
    return out


def test_repeated_short_labels_make_a_request_few_shot():
    sents = fewshot_sentences()
    assert fewshot_fields(sents) == {"type"}
    m = fewshot_mask(sents)
    assert m.tolist() == [s.startswith("Type:") for s in sents]


def test_chat_turns_and_distinct_answers_are_not_few_shot():
    chat = [f"Alice: see you at {h} then" if h % 2 else f"Bob: ok, {h} works" for h in range(12)]
    assert label_lines(chat)  # short field lines ...
    assert not fewshot_fields(chat)  # ... whose values do not repeat
    qa = [f"Question: who wrote book {i}?\nAnswer: Author {i}" for i in range(10)]
    assert not fewshot_fields(qa)
    assert not fewshot_mask(["Plain prose. Nothing here."]).any()


def test_fewshot_weight_raises_label_lines_only_when_set():
    sents = fewshot_sentences()
    dense = np.linspace(0.9, 0.1, len(sents))
    doc = np.zeros(len(sents), np.int64)
    off = combine("Text: a new example.", sents, dense, doc, RelevanceOptions())
    assert np.allclose(off, dense)
    on = combine("Text: a new example.", sents, dense, doc, RelevanceOptions(fewshot=2.0))
    lab = np.array([s.startswith("Type:") for s in sents])
    assert np.allclose(on[lab] - dense[lab], 2.0) and np.allclose(on[~lab], dense[~lab])
    assert on[lab].min() > on[~lab].max()
    assert RelevanceOptions(fewshot=2.0).fingerprint()["fewshot"] == 2.0
    assert "fewshot" not in RelevanceOptions().fingerprint()
