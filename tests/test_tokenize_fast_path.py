"""The plain-text tokenizer fast path gives exactly what the checkpoint's tokenizer gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxcomp.compressors.token_classifier import (
    _PLAIN_RANGES,
    _plain_text,
    _plain_text_tokenizer,
)

PLAIN_CHARS = ["\t", "\n", "\r"] + [chr(c) for lo, hi in _PLAIN_RANGES for c in range(lo, hi + 1)]


def _same(full, plain, text: str) -> None:
    a = full.encode(text, add_special_tokens=False)
    b = plain.encode(text, add_special_tokens=False)
    assert a.ids == b.ids, text
    assert a.offsets == b.offsets, text
    assert a.word_ids == b.word_ids, text


@pytest.fixture(scope="module")
def uncased(minilm_compressor):
    full = minilm_compressor._tok
    plain = _plain_text_tokenizer(full)
    assert plain is not None
    return full, plain


@pytest.fixture(scope="module")
def cased(minilm_compressor):
    from tokenizers import Tokenizer

    cfg = json.loads(minilm_compressor._tok.to_str())
    cfg["normalizer"]["lowercase"] = False
    full = Tokenizer.from_str(json.dumps(cfg))
    plain = _plain_text_tokenizer(full)
    assert plain is not None and plain.normalizer is None
    return full, plain


@pytest.mark.parametrize("which", ["uncased", "cased"])
def test_every_plain_character_in_context(request, which):
    full, plain = request.getfixturevalue(which)
    for ch in PLAIN_CHARS:
        text = f"The{ch}Cat sat{ch} {ch}on x{ch}y {ch}{ch}MAT. Don't{ch}stop"
        assert _plain_text(text)
        _same(full, plain, text)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(PLAIN_CHARS + list("AbZq09 .,'")), max_size=300))
def test_random_plain_texts(uncased, text):
    _same(*uncased, text)


def test_essays_equal_through_the_compressor(minilm_compressor, essays):
    comp = minilm_compressor
    for text in list(essays.values())[:3]:
        assert _plain_text(text)
        fast = comp._tokenize(text)
        saved, comp._tok_plain = comp._tok_plain, None
        try:
            slow = comp._tokenize(text)
        finally:
            comp._tok_plain = saved
        for x, y in zip(fast, slow):
            np.testing.assert_array_equal(x, y)


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
    assert not _plain_text(text)
    assert not _plain_text(text + "a" * 300)  # non-ASCII path over the code-point array


def test_other_tokenizer_families_take_the_general_path(tiny_xlmr_compressor):
    assert tiny_xlmr_compressor._tok_plain is None
