import asyncio
import copy

import numpy as np
import pytest

import ctxcomp
from ctxcomp import BudgetError, InputError, TokenClassifierCompressor
from ctxcomp.rules import RuleShares
from tests.support.invariants import check_no_fused_words, check_result


@pytest.fixture(scope="module")
def reader():
    return ctxcomp.get_tokenizer("cl100k_base")


@pytest.mark.parametrize(
    "which", ["tiny_bert_compressor", "tiny_xlmr_compressor", "minilm_compressor"]
)
@pytest.mark.parametrize("target", [150, 700, 2000])
def test_global_budget_exact_within_one_word(request, which, target, long_text, reader):
    comp = request.getfixturevalue(which)
    text = long_text[:30000]
    r = comp.compress(text, target_tokens=target)
    check_result(r, [text], reader)
    check_no_fused_words(r, [text])
    assert r.compressed_tokens <= target
    # within one word: adding the best dropped unit would exceed the budget
    sc = r.scores[0]
    cand = np.flatnonzero(~sc.kept & ~sc.forced)
    best = cand[np.lexsort((cand, -sc.probs[cand]))][0]
    assert (
        target - r.compressed_tokens
        <= reader.count(" " + text[sc.starts[best] : sc.ends[best]]) + 2
    )
    assert r.ratio == pytest.approx(r.compressed_tokens / r.original_tokens)
    assert r.config_hash == comp.config_hash


def test_ratio_budget_and_forced_tokens(minilm_compressor, essays, reader):
    text = essays["avg"]
    r = minilm_compressor.compress(text, ratio=0.33)
    assert r.target_tokens == int(0.33 * r.original_tokens)
    assert r.compressed_tokens <= r.target_tokens
    sc = r.scores[0]
    unit_text = [text[a:b] for a, b in zip(sc.starts, sc.ends)]
    for u, k in zip(unit_text, sc.kept):
        if u in ("?", "!"):
            assert k, "force tokens are always kept"
    # periods are forced too, but drop_consecutive removes a period that directly repeats one
    assert text.count("\n") >= r.text.count("\n") > 0


def test_selection_prefers_higher_probabilities(minilm_compressor, essays):
    text = essays["gap"]
    r = minilm_compressor.compress(text, ratio=0.4)
    sc = r.scores[0]
    free = ~sc.forced
    kept_p = sc.probs[free & sc.kept]
    drop_p = sc.probs[free & ~sc.kept]
    # global threshold: every kept free unit scores at least as high as every dropped one,
    # except drop_consecutive removals (forced only) — so strictly ordered for free units
    assert kept_p.min() >= drop_p.max()


def test_deterministic(minilm_classifier_dir, essays):
    a = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu")
    b = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu")
    text = essays["boss"]
    ra, rb = a.compress(text, ratio=0.3), b.compress(text, ratio=0.3)
    assert ra.text == rb.text and ra.config_hash == rb.config_hash
    assert ra.text == a.compress(text, ratio=0.3).text


def test_batch_equals_single_and_async(minilm_compressor, essays):
    texts = [essays["avg"], [essays["boss"][:3000], essays["copy"][:2000]], essays["gba"]]
    batch = minilm_compressor.compress_batch(texts, target_tokens=400)
    single = [minilm_compressor.compress(t, target_tokens=400) for t in texts]
    assert [r.text for r in batch] == [r.text for r in single]

    async def go():
        return await asyncio.gather(
            *(minilm_compressor.acompress(t, target_tokens=400) for t in texts)
        )

    assert [r.text for r in asyncio.run(go())] == [r.text for r in single]


def test_budget_at_or_above_input_returns_unchanged(tiny_bert_compressor):
    text = "A short text. It stays."
    for kw in ({"ratio": 1.0}, {"target_tokens": 10_000}):
        r = tiny_bert_compressor.compress(text, **kw)
        assert r.text == text and r.ratio == 1.0
        assert r.documents[0].kept_spans[0].start == 0


def test_documents_metadata_and_provenance(minilm_compressor, essays, reader):
    docs = [
        ctxcomp.Document(essays["avg"][:2500], {"source": "avg", "page": 1}),
        {"text": essays["copy"][:2500], "metadata": {"source": "copy"}},
        essays["gap"][:2500],
    ]
    r = minilm_compressor.compress(docs, target_tokens=500)
    texts = [essays["avg"][:2500], essays["copy"][:2500], essays["gap"][:2500]]
    check_result(r, texts, reader)
    assert r.documents[0].metadata == {"source": "avg", "page": 1}
    assert r.documents[1].metadata == {"source": "copy"}
    assert r.documents[2].metadata == {}
    for s in r.spans:
        assert texts[s.document][s.start : s.end] in r.text


def test_tiny_budget_drops_whole_documents_and_says_so(minilm_compressor, reader):
    docs = ["Alpha beta gamma delta", "epsilon zeta eta theta iota", "kappa lambda mu nu"]
    r = minilm_compressor.compress(docs, target_tokens=3)
    assert r.compressed_tokens <= 3
    assert r.dropped_documents  # reported, not silently lost
    assert any("dropped" in n for n in r.notes)
    assert len(r.documents) == 3


def test_budget_smaller_than_forced_content_is_an_error_when_strict(minilm_classifier_dir):
    text = (
        "Keep this: <ctxcomp:keep>"
        + "important clause, " * 30
        + "</ctxcomp:keep> and more words here."
    )
    strict = TokenClassifierCompressor(str(minilm_classifier_dir), on_overflow="error")
    with pytest.raises(BudgetError, match="protected spans alone take"):
        strict.compress(text, target_tokens=20)


PROTECTED = """# Install guide

Run the following and read https://example.com/docs/install?x=1 before starting.

```python
def f(x):
    return x * 2  # keep me verbatim
```

- first item with many words that could be dropped
- second item, also wordy and verbose

Use `pip install ctxcomp[hf]` and `range(1..9)` then pass {"ratio": 0.3, "nested": {"a": [1, 2]}} as config.
Some <ctxcomp:keep>exact legal wording that must survive</ctxcomp:keep> stays as written.
"""


def test_protected_spans_kept_verbatim(minilm_compressor, reader):
    r = minilm_compressor.compress(PROTECTED * 3, ratio=0.8)
    for must in [
        "# Install guide",
        "https://example.com/docs/install?x=1",
        "def f(x):\n    return x * 2  # keep me verbatim\n```",
        "`pip install ctxcomp[hf]`",
        "`range(1..9)`",  # repeated force tokens inside protected text are not collapsed
        '{"ratio": 0.3, "nested": {"a": [1, 2]}}',
        "exact legal wording that must survive",
    ]:
        assert must in r.text, must
    assert "<ctxcomp:keep>" not in r.text and "</ctxcomp:keep>" not in r.text
    assert r.text.count("\n- ") == 6  # list markers kept
    check_result(r, [PROTECTED * 3], reader)


def test_keep_digits(minilm_classifier_dir):
    comp = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", keep_digits=True)
    text = (
        "In 1997 the company sold 42 units for 3.5 million dollars, said the report from 2001. " * 5
    )
    r = comp.compress(text, ratio=0.6)
    for n in ("1997", "42", "3", "5", "2001"):
        assert r.text.count(n) >= text.count(n)


def test_cjk_and_mixed_scripts(tiny_xlmr_compressor, tiny_bert_compressor, reader):
    text = (
        "北京是中国的首都，也是政治和文化中心。我们在这里学习和工作。"
        "日本語のテキストです。カタカナのコンピューターとソフトウェア。"
        "Mixed English words appear here too, with names like Zürich and São Paulo. " * 3
    )
    for comp in (tiny_xlmr_compressor, tiny_bert_compressor):
        r = comp.compress(text, ratio=0.5)
        check_result(r, [text], reader)
        assert r.compressed_tokens <= r.target_tokens
        sc = r.scores[0]
        units = [text[a:b] for a, b in zip(sc.starts, sc.ends)]
        # units never mix CJK ideographs with Latin letters
        for u in units:
            if any("\u4e00" <= ch <= "\u9fff" for ch in u):
                assert not any(ch.isascii() and ch.isalpha() for ch in u), u
        # Latin words never fuse; CJK joins without spaces
        latin = [w for w in r.text.split() if w.isascii()]
        for w in latin:
            assert w in text


def test_katakana_word_is_one_unit(tiny_bert_compressor):
    text = "カタカナのコンピューターです。" * 4
    r = tiny_bert_compressor.compress(text, ratio=0.5)
    sc = r.scores[0]
    units = {text[a:b] for a, b in zip(sc.starts, sc.ends)}
    assert "コンピューター" in units


def test_per_chunk_mode_runs_and_reports_counts(minilm_classifier_dir, essays, reader):
    comp = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", mode="per_chunk")
    r = comp.compress(essays["worked"], target_tokens=2000)
    check_result(r, [essays["worked"]], reader)
    assert r.mode == "per_chunk"
    assert (
        comp.config_hash
        != TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu").config_hash
    )


def test_question_is_accepted_and_reported(minilm_compressor, essays):
    r = minilm_compressor.compress(essays["avg"], ratio=0.5, question="What is Lisp?")
    assert r.question_aware is False
    assert any("question" in n for n in r.notes)


def test_bad_inputs(minilm_compressor):
    c = minilm_compressor
    with pytest.raises(InputError, match="empty"):
        c.compress("   \n\t ", ratio=0.5)
    with pytest.raises(InputError, match="empty sequence"):
        c.compress([], ratio=0.5)
    with pytest.raises(InputError, match="document 1"):
        c.compress(["ok text", 42], ratio=0.5)
    with pytest.raises(InputError, match="bytes"):
        c.compress(b"raw bytes", ratio=0.5)
    with pytest.raises(InputError, match="invalid character"):
        c.compress("bad \ud800 surrogate", ratio=0.5)
    with pytest.raises(ctxcomp.BudgetError):
        c.compress("some text", ratio=1.5)
    with pytest.raises(ctxcomp.BudgetError):
        c.compress("some text", target_tokens=0)
    with pytest.raises(InputError, match="question"):
        c.compress("some text", ratio=0.5, question=3)
    with pytest.raises(InputError, match="unknown option"):
        TokenClassifierCompressor(c._model.model, c._model.hf_tokenizer, colour="red")


def test_missing_model_path():
    with pytest.raises(ctxcomp.ModelLoadError, match="does not exist"):
        TokenClassifierCompressor("./no/such/model/dir")
    with pytest.raises(ctxcomp.ModelLoadError, match="does not exist"):
        ctxcomp.load_compressor("/definitely/missing")


def test_hub_id_goes_to_the_hub_loader(monkeypatch):
    """Hub ids are passed to transformers (which downloads for users); offline it fails clearly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ctxcomp.ModelLoadError, match="microsoft/llmlingua-2-xlm-roberta-large-meetingbank"
    ):
        TokenClassifierCompressor("microsoft/llmlingua-2-xlm-roberta-large-meetingbank")


def test_large_input_bounded(tiny_bert):
    model, tok = tiny_bert
    comp = TokenClassifierCompressor(copy.deepcopy(model), tok, device="cpu", batch_tokens=16384)
    para = "The quick brown fox jumps over the lazy dog near the river bank. " * 40 + "\n\n"
    text = para * 400  # ~1 MB, no silent truncation
    r = comp.compress(text, ratio=0.2)
    assert r.compressed_tokens <= r.target_tokens
    assert r.documents[0].kept_spans[-1].end > len(text) - 200  # the end of the text was seen


@pytest.mark.parametrize("which", ["tiny_bert_compressor", "tiny_xlmr_compressor"])
def test_block_tokenisation_equals_whole_text(request, which, essays):
    """Long texts are tokenised in whitespace-cut blocks (parallel, bounded memory): ids,
    character offsets and word grouping must equal one pass over the whole text."""
    comp = request.getfixturevalue(which)
    text = next(iter(essays.values()))[:30_000]
    text += "\n\n  Tabs\tand  double  spaces,\r\nCRLF lines, 北京欢迎你。 emoji 🙂 end.\n" * 20
    ids, offs, wids, _ = comp.analyzer.tokenize(text)
    enc = comp._tok.encode(text, add_special_tokens=False)
    assert ids.tolist() == list(enc.ids)
    assert [tuple(o) for o in offs.tolist()] == [tuple(o) for o in enc.offsets]
    ref = np.array([-1 if w is None else w for w in enc.word_ids])
    # word ids restart per block: compare the grouping (same word <=> same id), not values
    same = (wids[1:] == wids[:-1]) & (wids[1:] >= 0)
    ref_same = (ref[1:] == ref[:-1]) & (ref[1:] >= 0)
    assert np.array_equal(same, ref_same)
    assert np.array_equal(wids < 0, ref < 0)


def test_neighbor_weight_keeps_phrases(minilm_classifier_dir, reader):
    """neighbor_weight scores a word by its own keep probability and its likelier
    neighbour's: a weak word between two kept words is kept before an isolated one."""
    text = "alpha beta gamma delta epsilon zeta eta theta"
    want = {"alpha": 0.9, "beta": 0.1, "gamma": 0.9, "delta": 0.05, "epsilon": 0.3}

    def make(w):
        c = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", neighbor_weight=w)
        words = text.split()

        def predict(windows, progress=None):
            out = []
            for win in windows:
                toks = c._tok.decode(win.tolist()).split()
                assert toks == words  # one window, one token per word here
                out.append(np.array([want.get(t, 0.0) for t in toks], dtype=np.float32))
            return out

        c._model.predict = predict
        return c

    plain = make(0.0).compress(text, target_tokens=3)
    phrase = make(0.5).compress(text, target_tokens=3)
    assert plain.text.split() == ["alpha", "gamma", "epsilon"]
    assert phrase.text.split() == ["alpha", "beta", "gamma"]
    assert plain.config_hash != phrase.config_hash
    for r in (plain, phrase):
        assert reader.count(r.text) <= 3
        check_result(r, [text], reader)
    # the reported probabilities stay the model's own
    assert np.allclose(phrase.scores[0].probs[:3], [0.9, 0.1, 0.9])
    with pytest.raises(InputError, match="neighbor_weight"):
        TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", neighbor_weight=1.0)


def test_repeat_cover_keeps_one_occurrence_of_recurring_words(minilm_classifier_dir, reader):
    """repeat_cover lifts the best-scored occurrence of every word seen twice or more (case
    folded), so a recurring low-scored word (a few-shot label) keeps one occurrence."""
    text = "alpha Label beta label gamma LABEL delta epsilon zeta eta"
    want = {"alpha": 0.9, "beta": 0.8, "gamma": 0.7, "delta": 0.6, "epsilon": 0.5}
    want_label = [0.1, 0.3, 0.2]  # its second occurrence scores best

    def make(cover):
        c = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", repeat_cover=cover)

        def predict(windows, progress=None):
            out = []
            for win in windows:
                toks = c._tok.decode(win.tolist()).split()
                labels = iter(want_label)
                out.append(
                    np.array(
                        [next(labels) if t == "label" else want.get(t, 0.0) for t in toks],
                        dtype=np.float32,
                    )
                )
            return out

        c._model.predict = predict
        return c

    plain = make(0.0).compress(text, target_tokens=4)
    cover = make(0.5).compress(text, target_tokens=4)
    assert "label" not in plain.text.lower()
    assert cover.text.split() == ["alpha", "beta", "label", "gamma"]  # its best one, in order
    assert plain.config_hash != cover.config_hash
    for r in (plain, cover):
        assert reader.count(r.text) <= 4
        check_result(r, [text], reader)
    assert np.allclose(cover.scores[0].probs[:4], [0.9, 0.1, 0.8, 0.3])  # the model's own
    with pytest.raises(InputError, match="repeat_cover"):
        TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", repeat_cover=1.5)


def test_label_cover_keeps_label_lines(minilm_classifier_dir, reader):
    """label_cover lifts the short lines of a recurring "Field: value" field (a few-shot
    prompt's labels): scope "best" one occurrence of each distinct line, "all" every one,
    the distinct ones first; the long-valued field ("Question") is not a label field;
    output stays a subsequence."""
    qs = [
        "what river runs through the old city of rome",
        "who wrote the first novel about a whale hunt",
        "where is the tallest mountain on the african continent",
        "who painted the ceiling of the sistine chapel in rome",
    ]
    labels = ["Other location", "Individual", "Other location", "Individual"]
    text = "\n\n".join(f"Question: {q}\nType: {t}" for q, t in zip(qs, labels))
    low = {"type", "other", "location", "individual", "question"}

    def make(**kw):
        # label lines are a third of this tiny text: no share cap here (caps: test_rules.py)
        kw.setdefault("rule_shares", RuleShares(label=1.0))
        c = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", **kw)

        def predict(windows, progress=None):
            out = []
            for win in windows:
                toks = [c._tok.id_to_token(i) for i in win.tolist()]
                # the second of each label scores a little better than the first
                seen: dict[str, int] = {}
                probs = []
                for t in toks:
                    if t in low:
                        seen[t] = seen.get(t, 0) + 1
                        probs.append(0.02 * seen[t])
                    else:
                        probs.append(0.4)
                out.append(np.array(probs, dtype=np.float32))
            return out

        c._model.predict = predict
        return c

    budget = reader.count(text) // 2
    plain = make().compress(text, target_tokens=budget)
    best = make(label_cover=1.0).compress(text, target_tokens=budget)
    every = make(label_cover=1.0, label_scope="all").compress(text, target_tokens=budget)
    assert "location" not in plain.text.lower() and "individual" not in plain.text.lower()
    for r in (plain, best, every):
        assert reader.count(r.text) <= budget
        check_result(r, [text], reader)
    # best: each distinct label line once, whole, with its field name: the better-scored one
    assert best.text.count("Type: Other location") == 1
    assert best.text.count("Type: Individual") == 1
    second = text.index("Other location", text.index("Other location") + 1)
    kept = [(a, b) for _, a, b in best.spans]
    assert any(a <= second < b for a, b in kept)  # the better-scored occurrence
    assert not any(a <= text.index("Other location") < b for a, b in kept)
    # all: every label line
    assert every.text.count("Type: Other location") == 2
    assert every.text.count("Type: Individual") == 2
    assert "Question:" not in every.text  # the long-valued field is no label
    # tiers: at any budget "all" keeps each label once before any twice
    for b in range(4, budget, 3):
        one = make(label_cover=1.0).compress(text, target_tokens=b).text
        two = make(label_cover=1.0, label_scope="all").compress(text, target_tokens=b).text
        for label in ("Type: Other location", "Type: Individual"):
            assert (label in two) >= (label in one), (b, one, two)
    assert len({plain.config_hash, best.config_hash, every.config_hash}) == 3
    with pytest.raises(InputError, match="label_cover"):
        TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", label_cover=2.0)
    with pytest.raises(InputError, match="label_scope"):
        TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", label_scope="some")


def test_cached_compressor_memoises_analyses_exactly(minilm_classifier_dir, essays):
    """With a cache, recurring documents skip tokenisation through a bounded LRU keyed by
    the exact text: results equal an uncached compressor's, a one-character edit is a new
    entry, and the LRU never holds more than its token bound."""
    from ctxcomp.cache import MemoryStore, SegmentCache
    from ctxcomp.compressors.token_classifier.doc import AnalysisMemo

    plain = TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu")
    cached = TokenClassifierCompressor(
        str(minilm_classifier_dir), device="cpu", cache=SegmentCache(MemoryStore())
    )
    texts = [t[:3000] for t in list(essays.values())[:4]]
    edited = texts[0][:-1] + ("x" if texts[0][-1] != "x" else "y")
    for docs in (texts[:2], texts[1:3], texts[:2], [edited, texts[1]]):
        assert cached.compress(docs, ratio=0.4).text == plain.compress(docs, ratio=0.4).text
    memo = cached.analyzer.memo
    assert memo is not None and edited in memo._d and texts[0] in memo._d
    small = AnalysisMemo(max_tokens=1500)
    for t in texts:
        small.put(t, cached.analyzer.build_doc_tokens(t, cached.options))
        assert small._tokens <= 1500 and small._tokens == sum(d.ids.size for d in small._d.values())
    assert plain.analyzer.memo is None  # no cache, no memo


def _label_lines_reference(plan, scope):
    """label_cover's definition, one line at a time."""
    from ctxcomp.compressors.token_classifier.shaping import FIELD_LINE

    out, found, best = np.zeros(plan.n), [], {}
    for di, t in enumerate(plan.texts):
        for m in FIELD_LINE.finditer(t):
            f, v = " ".join(m.group(1).casefold().split()), " ".join(m.group(2).split())
            found.append((di, m.start(1), m.end(2), f, v))
    sizes: dict[str, list[int]] = {}
    for *_, f, v in found:
        sizes.setdefault(f, []).append(len(v.split()))
    fields = {f for f, n in sizes.items() if len(n) >= 3 and np.median(n) <= 6}
    ok = ~plan.forced & ~plan.excluded
    for di, a, b, f, v in found:
        if f not in fields or len(v.split()) > 6:
            continue
        idx = [i for i in range(plan.n) if plan.doc[i] == di and a <= plan.starts[i] < b and ok[i]]
        if not idx:
            continue
        if scope == "all":
            out[idx] = 1.0
        k, score = (f, v.casefold()), plan.probs[idx].mean()
        if k not in best or score > best[k][0]:  # the first of equal scores
            best[k] = (score, idx)
    for _, idx in best.values():
        out[idx] = 2.0
    return out


@pytest.mark.parametrize("seed", range(4))
def test_label_lines_match_reference(seed):
    """The vectorised label-line cover equals its one-line-at-a-time definition on random
    multi-document plans (field lines, long-valued fields, bare lines, forced units)."""
    import random
    import re

    from ctxcomp.compressors.token_classifier.shaping import label_lines
    from ctxcomp.selection import UnitTable

    rng = random.Random(seed)
    words = ["what", "who", "where", "river", "city", "novel", "mountain", "painted"]
    fields = ["Type", "Question", "Answer", "Speaker one"]
    values = ["Other location", "Individual", "Date", "x y z w v u t", "Paris"]
    for trial in range(100):
        texts = []
        for _ in range(rng.randint(1, 3)):
            lines = []
            for _ in range(rng.randint(0, 12)):
                v = (
                    rng.choice(values)
                    if rng.random() < 0.7
                    else " ".join(rng.choices(words, k=rng.randint(1, 9)))
                )
                lines.append(f"{rng.choice(fields)}: {v}" if rng.random() < 0.9 else v)
            texts.append("\n".join(lines))
        spans = [
            (d, m.start(), m.end()) for d, t in enumerate(texts) for m in re.finditer(r"\S+", t)
        ]
        n = len(spans)
        if n < 2:
            continue
        doc, starts, ends = (np.array(c, dtype=np.int64) for c in zip(*spans))
        z = np.zeros(n, bool)
        plan = UnitTable(
            texts=texts,
            separator="\n\n",
            doc=doc,
            starts=starts,
            ends=ends,
            probs=np.random.default_rng(trial).random(n),
            forced=np.array([rng.random() < 0.1 for _ in range(n)]),
            protected=z,
            excluded=np.array([rng.random() < 0.05 for _ in range(n)]),
            force_code=np.full(n, -1),
            gap=np.zeros(n, np.int64),
            nospace_first=z,
            nospace_last=z,
        )
        for scope in ("all", "best"):
            assert np.array_equal(label_lines(plan, scope), _label_lines_reference(plan, scope))
