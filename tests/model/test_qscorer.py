"""The question-conditioned scorer (ctxcomp.qscorer) and its training windows, on a tiny
random-weight BERT with the MiniLM tokenizer: packing, coverage, determinism, labels."""

import random

import numpy as np
import pytest

from ctxcomp.errors import InputError, ModelLoadError
from ctxcomp.rankers import Ranker, sentence_spans

TEXT = " ".join(
    f"Sentence {i} tells about the harbour town number {i} and its {i * 7} fishing boats."
    for i in range(60)
)


@pytest.fixture(scope="module")
def scorer(tiny_bert):
    from ctxcomp.qscorer import QuestionScorer

    model, tok = tiny_bert
    return QuestionScorer(
        model=model, tokenizer=tok, device="cpu", max_len=64, max_question_tokens=16
    )


def test_windows_cover_every_sentence_token_once_in_order(scorer):
    spans = sentence_spans(TEXT)
    q = "how many fishing boats does harbour town number 12 have " * 4  # cut to 16 tokens
    inputs, owners = scorer.windows(q, TEXT, spans)
    assert len(inputs) > 1 and all(len(x) <= 64 for x in inputs)
    q_ids = scorer.tok(q, add_special_tokens=False)["input_ids"][:16]
    for x in inputs:
        assert x[1 : 1 + len(q_ids)] == q_ids  # every window reads the question first
    seq = np.concatenate([o[o >= 0] for o in owners])
    assert (np.diff(seq) >= 0).all() and set(seq.tolist()) == set(range(len(spans)))
    n_tok = sum(len(scorer.tok(TEXT[a:b], add_special_tokens=False)["input_ids"]) for a, b in spans)
    assert seq.size == n_tok
    # short sentences are never split across windows
    for o in owners:
        inner = o[o >= 0]
        for w in owners:
            if w is not o:
                assert not set(inner.tolist()) & set(w[w >= 0].tolist())


def test_sentence_scores_shape_range_and_batch_independence(scorer, tiny_bert):
    from ctxcomp.qscorer import QuestionScorer

    spans = sentence_spans(TEXT)
    s = scorer.sentence_scores("fishing boats of town 3", TEXT, spans)
    assert s.shape == (len(spans),) and ((s > 0) & (s < 1)).all()
    model, tok = tiny_bert
    one = QuestionScorer(
        model=model, tokenizer=tok, device="cpu", max_len=64, max_question_tokens=16, batch_size=1
    )
    assert np.allclose(one.sentence_scores("fishing boats of town 3", TEXT, spans), s, atol=1e-5)
    assert scorer.sentence_scores("q", TEXT, []).size == 0


def test_unit_scores_and_ranker_protocol(scorer):
    units = ["First part. ", "Second part!\n\n", "", "Third."]
    u = scorer.unit_scores("which part", units)
    assert u.shape == (4,) and u[2] == 0.0
    assert isinstance(scorer, Ranker)
    r = scorer.score("which part", ["One doc. With two sentences.", "Another doc.", ""])
    assert r.shape == (3,)
    assert scorer.score("q", []).size == 0
    assert scorer.fingerprint().startswith("question-scorer:")


def test_bad_arguments_are_clear(tiny_bert, tmp_path):
    from ctxcomp.qscorer import QuestionScorer

    model, tok = tiny_bert
    with pytest.raises(InputError, match="max_len"):
        QuestionScorer(model=model, tokenizer=tok, max_len=20, max_question_tokens=16)
    with pytest.raises(InputError, match="tokenizer"):
        QuestionScorer(model=model)
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        QuestionScorer(tmp_path)


def test_record_windows_label_positive_sentences_only(scorer):
    from ctxcomp.training.qscorer import IGNORE, positive_mask, record_windows

    spans = sentence_spans(TEXT)
    a, b = spans[20]
    rec = {"question": "boats of harbour town number 20", "context": TEXT, "positives": [[a, b]]}
    assert positive_mask(spans, rec["positives"]).tolist() == [k == 20 for k in range(len(spans))]
    ws = record_windows(rec, scorer, random.Random(0))
    assert len(ws) == 3
    ids, labels = ws[0]  # the positive window holds sentence 20
    assert len(ids) == len(labels) <= 64 and 1 in labels
    lab = np.asarray(labels)
    n20 = len(scorer.tok(TEXT[a:b], add_special_tokens=False)["input_ids"])
    assert int((lab == 1).sum()) == n20
    assert (lab[: 1 + 16] == IGNORE).sum() >= 2  # [CLS] and the question are ignored
    assert record_windows({**rec, "positives": []}, scorer, random.Random(0)) == []


def test_rerank_orders_the_pool_and_keeps_it_ahead(scorer):
    from ctxcomp.qscorer import rerank

    texts = [TEXT, "A short second document. It has two sentences."]
    sents = {
        0: (sentence_spans(TEXT), np.linspace(0.9, 0.0, len(sentence_spans(TEXT)))),
        1: (sentence_spans(texts[1]), np.array([0.95, 0.1])),
    }
    out = rerank(scorer, "fishing boats", texts, sents, pool_tokens=60.0, weight=1.0)
    assert set(out) == {0, 1}
    s0, s1 = out[0][1], out[1][1]
    assert s0.shape == sents[0][1].shape and s1.shape == (2,)
    pooled = np.concatenate([s0, s1]) >= np.concatenate([sents[0][1], sents[1][1]])
    assert 1 <= pooled.sum() < s0.size  # a pool of the best sentences only
    assert s1[0] >= sents[1][1][0]  # the best sentence overall is pooled
    assert np.concatenate([s0, s1])[pooled].min() > np.concatenate([s0, s1])[~pooled].max()
    assert rerank(scorer, "q", [], {}, 10.0) == {}


def test_training_time_cap_stops_early_and_writes_a_loadable_delta(tmp_path):
    """``max_minutes`` ends the loop (after one step) and the LR schedule with it; the delta
    loads back as a scorer."""
    from ctxcomp.qscorer import QuestionScorer
    from ctxcomp.training.qscorer import ScorerTrainConfig, train_scorer

    spans = sentence_spans(TEXT)
    recs = [
        {"question": f"boats of harbour town number {k}", "context": TEXT, "positives": [spans[k]]}
        for k in (5, 20, 40, 50)
    ]
    cfg = ScorerTrainConfig(
        out=str(tmp_path / "qs"),
        epochs=50.0,
        batch_size=2,
        max_len=64,
        max_question_tokens=16,
        val_fraction=0.25,
        threads=1,
        device="cpu",
        max_minutes=1e-9,
    )
    rep = train_scorer(recs, cfg)
    assert rep["trained"]["steps"] == 1
    assert rep["trained"]["max_minutes"] == 1e-9
    qs = QuestionScorer(tmp_path / "qs", device="cpu", max_len=64, max_question_tokens=16)
    s = qs.sentence_scores("harbour town 20", TEXT, spans[:10])
    assert s.shape == (10,) and ((s >= 0) & (s <= 1)).all()


def test_one_device_choice_mps_included(monkeypatch):
    """The scorer picks its device with the backends' ``pick_device``: None and "auto" are
    CUDA, then Apple MPS, then the CPU; an explicit device is kept."""
    torch = pytest.importorskip("torch")
    import ctxcomp.qscorer
    from ctxcomp.backends import pick_device

    assert ctxcomp.qscorer.pick_device is pick_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device(None) == pick_device("auto") == "mps"
    assert pick_device("cpu") == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device(None) == "cpu"
    with pytest.raises(InputError, match="CUDA is not available"):
        pick_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == "cuda"
