"""Checks every compression result must pass, whatever the model."""

from __future__ import annotations

import re

import ctxcomp

_WS = re.compile(r"\s+")


def check_result(result: ctxcomp.CompressionResult, texts: list[str], reader) -> None:
    # counts are exact integers in the reader's tokenizer
    assert isinstance(result.original_tokens, int) and isinstance(result.compressed_tokens, int)
    assert result.compressed_tokens == reader.count(result.text)
    order = result.document_order or tuple(range(len(texts)))
    assert result.original_tokens == reader.count(result.separator.join(texts[i] for i in order))
    assert len(result.documents) == len(texts)
    for i, (d, text) in enumerate(zip(result.documents, texts)):
        assert d.index == i
        # kept spans: in order, disjoint, inside the document
        prev = -1
        for s in d.kept_spans:
            assert s.document == i
            assert 0 <= s.start < s.end <= len(text)
            assert s.start >= prev
            prev = s.end
        # the piece is the spans joined by whitespace only: a subsequence of the input
        pieces = [text[s.start : s.end] for s in d.kept_spans]
        assert _WS.sub("", d.text) == _WS.sub("", "".join(pieces))
        rest = d.text
        for p in pieces:
            j = rest.find(p)
            assert j >= 0 and not rest[:j].strip(), (p, rest[:80])
            rest = rest[j + len(p) :]
        assert not rest.strip()
    assert sorted(order) == list(range(len(result.documents)))
    joined = result.separator.join(
        result.documents[i].text for i in order if result.documents[i].text
    )
    assert result.text == joined


def check_no_fused_words(result: ctxcomp.CompressionResult, texts: list[str]) -> None:
    """Every whitespace-delimited word of the output lies inside one kept run (Latin text)."""
    for d, text in zip(result.documents, texts):
        runs = [text[s.start : s.end] for s in d.kept_spans]
        pos = 0
        for word in d.text.split():
            # find the run that contains this word
            ok = False
            while pos < len(runs):
                if word in runs[pos]:
                    ok = True
                    break
                pos += 1
            assert ok, f"word {word!r} is not inside a single kept run: fused?"
