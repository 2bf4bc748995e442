"""CascadeCompressor on tiny random models: shapes, budget, slots, cache, refusal, decoding."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from cascade_helpers import tiny_lm

import ctxcomp
from ctxcomp.cache import MemoryStore, SegmentCache
from ctxcomp.core import compressors, model_fingerprint
from ctxcomp.latent import LatentPart, TargetMismatchError, TextPart, build_inputs
from ctxcomp.latent.cascade import CascadeCompressor, answer, reconstruct
from ctxcomp.latent.cascade.layout import CascadeModel
from ctxcomp.latent.cascade.plan import chunk_length, split

DOC = "the theme and the thing then ended on the other hand. " * 4  # ~60 tokens
DOCS = [DOC, "and then the end", DOC[:40]]


def test_compress_shapes_slots_and_budget(tiny_c3: CascadeModel) -> None:
    comp = CascadeCompressor(tiny_c3)
    seen: list[tuple[int, int]] = []
    lp = comp.compress(DOCS, ratio=0.5, progress=lambda d, t: seen.append((d, t)))
    n = tiny_c3.num_latents
    assert lp.target == model_fingerprint(tiny_c3.decoder) and lp.hidden_size == 48
    assert lp.compressed_tokens == len(lp.latent_parts) * n <= lp.budget.resolve(lp.original_tokens)
    assert lp.original_tokens == sum(
        len(tiny_c3.encoder_tokenizer(d, add_special_tokens=False)["input_ids"]) for d in DOCS
    )
    assert all(p.rows.shape == (n, 48) for p in lp.latent_parts)
    slots = [s for p in lp.latent_parts for s in p.slots]
    assert [s.row for s in slots] == list(range(0, len(slots) * n, n))
    for d, text in enumerate(DOCS):  # each document covered in order, chunk after chunk
        spans = [(s.start, s.end) for s in slots if s.document == d]
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert seen[-1][0] == seen[-1][1] == comp.forwards < len(slots)  # equal chunks once
    assert lp.meta["chunk_tokens"] <= tiny_c3.chunk_tokens
    q = comp.compress(DOCS, ratio=0.5, question="Who?")
    assert any("without the question" in n for n in q.notes) and not lp.notes


def test_plan_picks_the_shortest_chunks_the_budget_allows() -> None:
    assert chunk_length([128], 32, num_latents=32, max_chunk=256) == 128
    assert chunk_length([128], 64, num_latents=32, max_chunk=256) == 64
    assert chunk_length([100, 30], 96, num_latents=32, max_chunk=256) == 64  # 2 + 1 chunks
    with pytest.raises(ctxcomp.BudgetError, match="need at least 64 rows, the budget allows 32"):
        chunk_length([300], 32, num_latents=32, max_chunk=256)
    assert split(10, 4) == [(0, 3), (3, 7), (7, 10)] and split(0, 4) == []


def test_budget_below_the_models_rate_is_refused(tiny_c3: CascadeModel) -> None:
    with pytest.raises(ctxcomp.BudgetError, match="highest ratio this model reaches is 4/16"):
        CascadeCompressor(tiny_c3).compress(DOC, target_tokens=4)


def test_cache_hit_miss_namespaces_and_cached_equals_uncached(tiny_c3: CascadeModel) -> None:
    cache = SegmentCache(MemoryStore())
    a = CascadeCompressor(tiny_c3, cache=cache, namespace="tenant-a")
    first = a.compress(DOCS, ratio=0.5)
    k = len({tuple(p.rows.flatten().tolist()) for p in first.latent_parts})  # distinct chunks
    assert a.forwards == k == cache.stats.misses < len(first.latent_parts)
    again = a.compress(DOCS, ratio=0.5)
    assert a.forwards == k and cache.stats.hits == k  # no new encoder work
    for p, q in zip(first.latent_parts, again.latent_parts):
        assert torch.equal(p.rows, q.rows)
    plain = CascadeCompressor(tiny_c3).compress(DOCS, ratio=0.5)
    for p, q in zip(plain.latent_parts, again.latent_parts):
        torch.testing.assert_close(p.rows, q.rows, rtol=1e-5, atol=1e-6)
    b = CascadeCompressor(tiny_c3, cache=cache, namespace="tenant-b")
    b.compress(DOCS, ratio=0.5)
    assert b.forwards == k  # another tenant never reads tenant-a's rows
    with pytest.raises(ctxcomp.CtxcompError, match="namespace"):
        CascadeCompressor(tiny_c3, namespace="bad space")


def test_cache_key_follows_the_weights(tiny_c3: CascadeModel) -> None:
    cache = SegmentCache(MemoryStore())
    comp = CascadeCompressor(tiny_c3, cache=cache)
    before = comp.compress(DOC, ratio=0.5)
    k = comp.forwards
    with torch.no_grad():
        tiny_c3.encoder.projector.bias.add_(1.0)  # retrained: old rows must not be served
    after = comp.compress(DOC, ratio=0.5)
    assert comp.forwards == 2 * k
    assert before.config_hash != after.config_hash
    assert not torch.allclose(before.latent_parts[0].rows, after.latent_parts[0].rows)


def test_registered_by_name(tiny_c3: CascadeModel) -> None:
    comp = compressors.create("c3", tiny_c3)
    assert isinstance(comp, CascadeCompressor) and comp.kind == "latent"


def test_template_lays_one_block_per_chunk(tiny_c3: CascadeModel) -> None:
    rows = [
        LatentPart(torch.randn(4, 48)),
        TextPart("note", "keep"),
        LatentPart(torch.randn(4, 48)),
    ]
    pieces = tiny_c3.template(tiny_c3.decoder_tokenizer, rows, "Repeat the text: ")
    assert pieces[0].endswith("<|im_start|>user\n<img>") and pieces[1] is rows[0]
    assert pieces[2] == "</img>note<img>" and pieces[3] is rows[2]
    assert pieces[4] == "</img>\nRepeat the text: <|im_end|><|im_start|>assistant\n"
    batch = build_inputs(
        tiny_c3.decoder, tiny_c3.decoder_tokenizer, "Q?", rows, template=tiny_c3.template
    )
    (s1, s2) = batch.latent_spans[0]
    torch.testing.assert_close(batch.inputs_embeds[0, s1[0] : s1[1]], rows[0].rows)
    img = tiny_c3.decoder_tokenizer.convert_tokens_to_ids("<img>")
    emb = tiny_c3.decoder.get_input_embeddings().weight
    torch.testing.assert_close(batch.inputs_embeds[0, s2[0] - 1], emb[img])


def test_reconstruct_and_answer_run_and_refuse_another_decoder(tiny_c3: CascadeModel) -> None:
    lp = CascadeCompressor(tiny_c3).compress(DOC, ratio=0.5)
    text = reconstruct(tiny_c3, lp, max_new_tokens=5)
    assert isinstance(text, str)
    k = len(lp.latent_parts)
    pieces = [reconstruct(tiny_c3, _one(lp, i), max_new_tokens=5) for i in range(k)]
    assert k > 1 and text == "".join(pieces)  # chunk by chunk (batched), joined
    assert isinstance(answer(tiny_c3, "What?", lp, max_new_tokens=3), str)
    other = CascadeModel(
        tiny_c3.encoder, tiny_lm("qwen2", 48, seed=9), tiny_c3.encoder_tokenizer,
        tiny_c3.decoder_tokenizer, tiny_c3.template, tiny_c3.chunk_tokens,
    )  # fmt: skip
    with pytest.raises(TargetMismatchError, match="made for LM"):
        reconstruct(other, lp)
    with pytest.raises(ctxcomp.InputError, match="question must be a non-empty string"):
        answer(tiny_c3, " ", lp)


def _one(lp: Any, i: int) -> Any:
    from dataclasses import replace

    return replace(lp, parts=(LatentPart(lp.latent_parts[i].rows),))


def test_bad_inputs_named(tiny_c3: CascadeModel) -> None:
    comp = CascadeCompressor(tiny_c3)
    with pytest.raises(ctxcomp.InputError, match="empty"):
        comp.compress("   ", ratio=0.5)
    with pytest.raises(ctxcomp.InputError, match="bytes"):
        comp.compress(b"abc", ratio=0.5)  # type: ignore[arg-type]
    with pytest.raises(ctxcomp.BudgetError):
        comp.compress(DOC, ratio=0.5, target_tokens=4)
    with pytest.raises(ctxcomp.ModelLoadError, match="does not exist"):
        CascadeCompressor("/nonexistent/c3")
