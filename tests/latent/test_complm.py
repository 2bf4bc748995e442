"""CompLLM on tiny random Llama / Qwen2 / Gemma 3: segmentation, shapes and slot maps, the
segment cache (hit/miss, no forward on a second query, cached == uncached), determinism,
mixed CE + text prompts, model mismatch, bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from latent_helpers import CORPUS, make_lm

import ctxcomp
from ctxcomp.cache import MemoryStore, SegmentCache
from ctxcomp.core import compressors, model_fingerprint
from ctxcomp.latent import TargetMismatchError, TextPart, generate
from ctxcomp.latent.complm import SegmentCompressor, token_edits
from ctxcomp.latent.encoder import ConceptEncoder, EncoderConfig
from ctxcomp.latent.segments import Segment, choose_rate, rows_for, segment_documents

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

DOCS = [" ".join(CORPUS[:3]), "Notes: <ctxcomp:keep>code 42-X</ctxcomp:keep> then. " + CORPUS[3]]


def make(lm: Any, tok: Any, **kw: Any) -> SegmentCompressor:
    enc = ConceptEncoder(lm, tok, EncoderConfig(segment_tokens=8, min_rate=2, max_rate=4))
    return SegmentCompressor(lm, tok, encoder=enc, **kw)


def test_segmentation_is_token_exact_and_bounded(tok: Any) -> None:
    text = " ".join(CORPUS) + "\n\nA second paragraph starts here. And ends."
    pieces, n = segment_documents(tok, [text], max_tokens=8)
    ids = [i for p in pieces if isinstance(p, Segment) for i in p.ids]
    assert ids == tok.encode(text, add_special_tokens=False) and n == len(ids)
    assert all(1 <= len(p.ids) <= 8 for p in pieces if isinstance(p, Segment))
    starts = [p.start for p in pieces]
    assert starts == sorted(starts)
    for p in pieces:  # every segment's span decodes to its ids
        assert isinstance(p, Segment)
        assert tok.encode(text[p.start : p.end], add_special_tokens=False) == list(p.ids)
    # sentence-aware: a sentence end inside the window is a cut
    ends = {text[p.end - 1] for p in pieces}
    assert "." in ends


def test_rates_and_rows() -> None:
    assert [rows_for(n, 2) for n in (1, 2, 3, 20)] == [1, 1, 2, 10]
    r = choose_rate([20, 20, 7], 20, 2.0, 4.0)
    assert sum(rows_for(n, r) for n in (20, 20, 7)) <= 20 and r >= 2.0
    with pytest.raises(ctxcomp.BudgetError, match="highest rate"):
        choose_rate([20, 20], 4, 2.0, 4.0)


def test_shapes_slots_and_mixed_parts(lm: Any, tok: Any) -> None:
    comp = make(lm, tok)
    lp = comp.compress(DOCS, ratio=0.5)
    assert lp.target == model_fingerprint(lm) and lp.hidden_size == 32
    assert tuple(lp.rows.shape) == (lp.n_rows, 32)
    assert lp.compressed_tokens <= lp.budget.resolve(lp.original_tokens)
    keep = [p for p in lp.text_parts if p.role == "keep"]
    assert [p.text for p in keep] == ["code 42-X"] and keep[0].document == 1
    assert DOCS[1][keep[0].start : keep[0].end] == "code 42-X"
    slots = lp.slots
    assert [s.row for s in slots] == [sum(x.rows for x in slots[:i]) for i in range(len(slots))]
    assert sum(s.rows for s in slots) == lp.n_rows
    for s in slots:  # each slot's rows: ceil(tokens / rate)
        n = len(tok.encode(DOCS[s.document][s.start : s.end], add_special_tokens=False))
        assert s.rows == rows_for(n, lp.meta["rate"])
    at4 = comp.compress(DOCS, target_tokens=comp.positions(DOCS, 4.0))
    assert at4.meta["rate"] <= 4.0 and at4.compressed_tokens <= comp.positions(DOCS, 4.0)
    with pytest.raises(ctxcomp.InputError, match="trained range"):
        comp.positions(DOCS, 5.0)
    out = generate(lm, tok, "What is the code?", lp, max_new_tokens=3)
    assert isinstance(out, str)


def test_cache_hit_miss_no_forward_and_equal(llama: Any, tok: Any) -> None:
    cache = SegmentCache(MemoryStore())
    comp = make(llama, tok, cache=cache, namespace="t1")
    a = comp.compress(DOCS, ratio=0.5)
    n_seg = a.meta["segments"]
    assert comp.forwards == n_seg and cache.stats.misses == n_seg and cache.stats.hits == 0
    b = comp.compress(DOCS, ratio=0.5, question="another question")
    assert comp.forwards == n_seg  # second query: no encoder forward
    assert cache.stats.hits == n_seg
    torch.testing.assert_close(a.rows, b.rows, rtol=0, atol=0)
    fresh = make(llama, tok).compress(DOCS, ratio=0.5)  # no cache: same rows
    torch.testing.assert_close(a.rows, fresh.rows, rtol=1e-5, atol=1e-5)
    assert a.slots == fresh.slots
    a2 = comp.compress(DOCS[::-1], ratio=0.5)  # same documents, other order: all hits
    assert comp.forwards == n_seg and a2.n_rows == a.n_rows
    other_ns = make(llama, tok, cache=cache, namespace="t2")
    other_ns.compress(DOCS, ratio=0.5)
    assert other_ns.forwards == n_seg  # namespaces never share entries


def test_encoder_change_misses(llama: Any, tok: Any) -> None:
    cache = SegmentCache(MemoryStore())
    comp = make(llama, tok, cache=cache)
    comp.compress(DOCS, ratio=0.5)
    comp2 = make(llama, tok, cache=cache)
    with torch.no_grad():
        comp2.encoder.head.bias += 0.5  # another encoder: another fingerprint, no stale hits
    comp2.compress(DOCS, ratio=0.5)
    assert comp2.forwards == comp.forwards


def test_determinism_and_registry(llama: Any, tok: Any) -> None:
    a = make(llama, tok).compress(DOCS, ratio=0.4)
    b = compressors.create(
        "complm", llama, tok, encoder=ConceptEncoder(llama, tok, EncoderConfig(8, 2, 4))
    ).compress(DOCS, ratio=0.4)
    torch.testing.assert_close(a.rows, b.rows, rtol=0, atol=0)
    assert a.config_hash == b.config_hash and a.to_dict() == b.to_dict()


def test_save_load_encoder(tmp_path: Path, llama: Any, tok: Any) -> None:
    comp = make(llama, tok)
    with torch.no_grad():
        comp.encoder.head.bias += 0.25
    comp.encoder.save(tmp_path / "enc", half=False)
    again = SegmentCompressor(llama, tok, encoder=tmp_path / "enc")
    torch.testing.assert_close(
        comp.compress(DOCS, ratio=0.5).rows, again.compress(DOCS, ratio=0.5).rows
    )
    other = make_lm("llama", len(tok), seed=9)
    with pytest.raises(ctxcomp.ModelLoadError, match="trained for LM"):
        SegmentCompressor(other, tok, encoder=tmp_path / "enc")


def test_model_mismatch_refused(llama: Any, tok: Any) -> None:
    lp = make(llama, tok).compress(DOCS, ratio=0.5)
    qwen = make_lm("qwen2", len(tok))
    with pytest.raises(TargetMismatchError, match="made for LM"):
        generate(qwen, tok, "Who?", lp)


def test_bad_inputs(llama: Any, tok: Any) -> None:
    comp = make(llama, tok)
    with pytest.raises(ctxcomp.InputError):
        comp.compress(["ok text.", "   "], ratio=0.5)  # an empty document
    with pytest.raises(ctxcomp.BudgetError, match="at least one row"):
        comp.compress(DOCS, ratio=0.1)  # fewer positions than segments
    with pytest.raises(ctxcomp.BudgetError, match="highest rate"):
        comp.compress(DOCS, ratio=0.27)  # ~4.5x: beyond the encoder's max rate 4x
    with pytest.raises(ctxcomp.BudgetError):
        comp.compress(DOCS, ratio=1.5)
    with pytest.raises(ctxcomp.InputError, match="max_rate"):
        EncoderConfig(segment_tokens=8, min_rate=2, max_rate=9)
    with pytest.raises(ctxcomp.InputError, match="max_rate"):
        EncoderConfig(min_rate=0.5)
    with pytest.raises(ctxcomp.InputError, match="segment_tokens"):
        EncoderConfig(segment_tokens=1)
    with pytest.raises(ctxcomp.InputError, match="empty"):
        comp.encoder.encode([[]], [1])
    lp = comp.compress(DOCS, ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="shorten the question"):
        generate(llama, tok, "why " * 600, lp)
    with pytest.raises(ctxcomp.InputError, match="near=True needs"):
        make(llama, tok, near=True)
    with pytest.raises(ctxcomp.ModelLoadError, match="train-latent"):
        SegmentCompressor(llama, tok, encoder=None)
    with pytest.raises(ctxcomp.InputError, match="tokenizer"):
        SegmentCompressor(llama, encoder=comp.encoder)


def test_only_keep_spans_gives_text_prompt(llama: Any, tok: Any) -> None:
    lp = make(llama, tok).compress("<ctxcomp:keep>all of it kept</ctxcomp:keep>", ratio=1.0)
    assert lp.n_rows == 0 and lp.parts == (TextPart("all of it kept", "keep", 0, 14, 28),)


def test_near_duplicate_reuse(llama: Any, tok: Any) -> None:
    pytest.importorskip("faiss")

    class Bag:  # a deterministic embedder: bag of characters (no model download)
        dim = 64
        fingerprint = "bag64"

        def encode(self, texts: list[str]) -> Any:
            import numpy as np

            out = np.zeros((len(texts), 64), np.float32)
            for i, t in enumerate(texts):
                for ch in t.lower():
                    out[i, ord(ch) % 64] += 1
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    cache = SegmentCache(MemoryStore(), near=True, embedder=Bag(), near_threshold=0.9)
    comp = make(llama, tok, cache=cache, near=True, near_max_edits=2)
    base = "Founders should talk to users, write code and ship."
    comp.compress(base, ratio=0.5)
    n0 = comp.forwards
    edited = base.replace("users", "the")  # one token replaced, same length
    assert token_edits(tok.encode(base), tok.encode(edited)) == 1
    lp = comp.compress(edited, ratio=0.5)
    assert comp.near_reused >= 1 and cache.stats.near_hits >= 1
    assert comp.forwards - n0 < lp.meta["segments"]  # at least one segment not encoded
    strict = make(llama, tok, cache=cache, near=True, near_max_edits=0)
    strict.compress(edited, ratio=0.5)
    assert strict.near_reused == 0  # the edit bound is enforced
