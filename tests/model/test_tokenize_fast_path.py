"""The plain-text tokenizer fast path gives exactly what the checkpoint's tokenizer gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxcomp.compressors.wordpiece_fastpath import (
    PLAIN_RANGES,
    WordPieceMemo,
    is_wordpiece_bert,
    plain_text,
    plain_text_tokenizer,
)
from ctxcomp.text.units import codepoints

PLAIN_CHARS = ["\t", "\n", "\r"] + [chr(c) for lo, hi in PLAIN_RANGES for c in range(lo, hi + 1)]


def _same(full, plain, text: str) -> None:
    a = full.encode(text, add_special_tokens=False)
    b = plain.encode(text, add_special_tokens=False)
    assert a.ids == b.ids, text
    assert a.offsets == b.offsets, text
    assert a.word_ids == b.word_ids, text
    memo = WordPieceMemo(plain, full)
    if memo.applies(text):
        ids, offs, wids = memo.encode(text, codepoints(text))
        assert ids.tolist() == a.ids, text
        assert [tuple(o) for o in offs.tolist()] == a.offsets, text
        assert wids.tolist() == a.word_ids, text


@pytest.fixture(scope="module")
def uncased(minilm_compressor):
    full = minilm_compressor._tok
    plain = plain_text_tokenizer(full)
    assert plain is not None
    return full, plain


@pytest.fixture(scope="module")
def cased(minilm_compressor):
    from tokenizers import Tokenizer

    cfg = json.loads(minilm_compressor._tok.to_str())
    cfg["normalizer"]["lowercase"] = False
    full = Tokenizer.from_str(json.dumps(cfg))
    plain = plain_text_tokenizer(full)
    assert plain is not None and plain.normalizer is None
    return full, plain


@pytest.mark.parametrize("which", ["uncased", "cased"])
def test_every_plain_character_in_context(request, which):
    full, plain = request.getfixturevalue(which)
    for ch in PLAIN_CHARS:
        text = f"The{ch}Cat sat{ch} {ch}on x{ch}y {ch}{ch}MAT. Don't{ch}stop"
        assert plain_text(text)
        _same(full, plain, text)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(PLAIN_CHARS + list("AbZq09 .,'")), max_size=300))
def test_random_plain_texts(uncased, text):
    _same(*uncased, text)


def test_essays_equal_through_the_compressor(minilm_compressor, essays):
    comp = minilm_compressor
    for text in list(essays.values())[:3]:
        assert plain_text(text)
        assert comp.analyzer.words is not None
        fast = comp.analyzer.tokenize(text)
        saved = comp.analyzer.tok_plain, comp.analyzer.words
        comp.analyzer.tok_plain = comp.analyzer.words = None
        try:
            slow = comp.analyzer.tokenize(text)
        finally:
            comp.analyzer.tok_plain, comp.analyzer.words = saved
        for x, y in zip(fast[:3], slow[:3]):
            np.testing.assert_array_equal(x, y)
        # the memo path says its offsets hold no whitespace, and they do not
        assert fast[3] and not slow[3]
        assert not any(text[a:b] != text[a:b].strip() for a, b in fast[1].tolist())


@pytest.mark.parametrize(
    "text",
    [
        "café",
        "naïve",
        "a\x00b",
        "a\x0bb",
        "a\x7fb",
        "中文",
        "e\u0301",
        "zero\u200bwidth",
        "x\u2028y",
    ],
)
def test_text_outside_the_alphabet_is_not_plain(text):
    assert not plain_text(text)
    assert not plain_text(text + "a" * 300)  # non-ASCII path over the code-point array


def test_other_tokenizer_families_take_the_general_path(tiny_xlmr_compressor):
    assert tiny_xlmr_compressor.analyzer.tok_plain is None


WORDS = ["the", "cat", "Unaffable", "x", "42", "[", "mask", "]", "cls", "##ab", "naive", "—"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(WORDS), st.sampled_from(["", " ", "\n", "\u00a0", ".", "'"])),
        max_size=60,
    )
)
def test_word_memo_on_recurring_words_and_special_token_lookalikes(uncased, parts):
    """Words recur (memo hits) and special tokens like "[MASK]" may form across word cuts,
    where the tokenizer matches them before pre-tokenising: the memo must step aside."""
    text = "".join(w + sep for w, sep in parts)
    _same(*uncased, text)


def test_text_with_an_added_token_takes_the_general_path(uncased):
    full, plain = uncased
    memo = WordPieceMemo(plain, full)
    for text in ["a [MASK] b", "a [mask] b", "x[SEP]y", "[cls]"]:
        assert not memo.applies(text)
    assert memo.applies("a mask b [ sep ]")


def test_memo_starts_over_when_full_and_stays_exact(uncased, essays):
    full, plain = uncased
    memo = WordPieceMemo(plain, full, max_words=300)
    texts = [t[:2000] for t in list(essays.values())[:3]]
    for text in texts + texts:
        ids, offs, wids = memo.encode(text, codepoints(text))
        a = full.encode(text, add_special_tokens=False)
        assert ids.tolist() == a.ids and wids.tolist() == a.word_ids
        assert [tuple(o) for o in offs.tolist()] == a.offsets
        assert len(memo) <= 300  # each text has fewer new words than that: reset, then learn


def test_word_memo_only_for_bert_wordpiece(minilm_compressor, tiny_xlmr_compressor):
    assert is_wordpiece_bert(minilm_compressor._tok)
    assert minilm_compressor.analyzer.words is not None
    assert tiny_xlmr_compressor.analyzer.words is None
