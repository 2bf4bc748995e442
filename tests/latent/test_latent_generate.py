"""Splicing latent rows into tiny random Llama / Qwen2 / Gemma 3 models.

The central invariant: rows equal to the token embeddings of a text, spliced where the
text would be, give the model exactly the input (and logits) of that text as token ids.
"""

from __future__ import annotations

from typing import Any

import pytest
from latent_helpers import make_lm, make_tokenizer

import ctxcomp
from ctxcomp.core import model_fingerprint
from ctxcomp.latent import (
    LatentPart,
    LatentPrompt,
    TargetMismatchError,
    TextPart,
    answer_logprobs,
    build_inputs,
    check_target,
    generate,
    kv_cache_bytes,
    prefill,
    render_template,
)
from ctxcomp.latent.generate import PLACEHOLDER

torch = pytest.importorskip("torch")

CONTEXT = "Marie Curie was a physicist who conducted research on radioactivity."
QUESTION = "Who conducted research on radioactivity?"


def prompt_for(model: Any, rows: Any, n_orig: int = 10) -> LatentPrompt:
    return LatentPrompt(
        parts=(LatentPart(rows),),
        target=model_fingerprint(model),
        hidden_size=int(rows.shape[1]),
        compressor="test",
        config_hash="h",
        budget=ctxcomp.Budget(ratio=0.5),
        original_tokens=n_orig,
        compressed_tokens=int(rows.shape[0]),
    )


def reference_ids(tok: Any, ctx_ids: list[int], question: str) -> list[int]:
    mark = PLACEHOLDER.format(0)
    text = render_template(tok, f"{mark}\n\n{question}")
    before, after = text.split(mark)
    return [
        *tok.encode(before, add_special_tokens=False),
        *ctx_ids,
        *tok.encode(after, add_special_tokens=False),
    ]


def test_rows_of_token_embeddings_equal_token_input(lm: Any, tok: Any) -> None:
    ctx_ids = tok.encode(CONTEXT, add_special_tokens=False)
    with torch.no_grad():
        rows = lm.get_input_embeddings()(torch.tensor(ctx_ids))  # Gemma 3: already scaled
        batch = build_inputs(lm, tok, QUESTION, prompt_for(lm, rows))
        ids = reference_ids(tok, ctx_ids, QUESTION)
        assert batch.inputs_embeds.shape[1] == len(ids)
        before = render_template(tok, f"{PLACEHOLDER.format(0)}\n\n{QUESTION}").split("<ctx")[0]
        start = len(tok.encode(before, add_special_tokens=False))
        assert batch.latent_spans[0] == ((start, start + len(ctx_ids)),)
        a = lm(input_ids=torch.tensor([ids])).logits
        b = lm(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        ).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_batch_left_padding_matches_single(lm: Any, tok: Any) -> None:
    g = torch.Generator().manual_seed(1)
    p1 = prompt_for(lm, torch.randn(3, 32, generator=g))
    p2 = prompt_for(lm, torch.randn(9, 32, generator=g))
    qs = [QUESTION, "Where?"]
    with torch.no_grad():
        both = build_inputs(lm, tok, qs, [p1, p2])
        _, last = prefill(lm, both)
        for i, (q, p) in enumerate(zip(qs, [p1, p2])):
            _, one = prefill(lm, build_inputs(lm, tok, q, p))
            torch.testing.assert_close(last[i], one[0], rtol=1e-4, atol=1e-4)


def test_mixed_parts_and_generate(lm: Any, tok: Any) -> None:
    g = torch.Generator().manual_seed(2)
    p = LatentPrompt(
        parts=(
            TextPart("Use the notes.\n", "instruction"),
            LatentPart(torch.randn(4, 32, generator=g)),
            TextPart(" Paris 1867 ", "keep", 0, 10, 21),
            LatentPart(torch.randn(2, 32, generator=g)),
        ),
        target=model_fingerprint(lm),
        hidden_size=32,
        compressor="test",
        config_hash="h",
        budget=ctxcomp.Budget(ratio=0.5),
        original_tokens=30,
        compressed_tokens=10,
    )
    batch = build_inputs(lm, tok, QUESTION, p)
    spans = batch.latent_spans[0]
    assert [e - s for s, e in spans] == [4, 2]
    keep_ids = tok.encode(" Paris 1867 ", add_special_tokens=False)
    assert spans[1][0] - spans[0][1] == len(keep_ids)  # the kept text sits between the parts
    _, logits = prefill(lm, batch)
    out = generate(lm, tok, QUESTION, p, max_new_tokens=4)
    assert isinstance(out, str)
    first = int(logits[0].argmax())
    again = generate(lm, tok, QUESTION, p, max_new_tokens=4)
    assert again == out  # greedy: deterministic
    ids = lm.generate(
        inputs_embeds=batch.inputs_embeds,
        attention_mask=batch.attention_mask,
        max_new_tokens=1,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
    )
    assert int(ids[0, -1]) == first  # generate continues from the prefill's last logits


def test_answer_logprobs_match_token_path(llama: Any, tok: Any) -> None:
    ans = " Marie Curie"
    with torch.no_grad():
        batch = build_inputs(llama, tok, QUESTION, CONTEXT, answers=ans)
        lp = answer_logprobs(llama, batch)
        text = render_template(tok, f"{CONTEXT}\n\n{QUESTION}")
        p_ids = tok.encode(text, add_special_tokens=False)
        a_ids = tok.encode(ans, add_special_tokens=False)
        logits = llama(input_ids=torch.tensor([p_ids + a_ids])).logits[0].log_softmax(-1)
        ref = sum(float(logits[len(p_ids) - 1 + i, t]) for i, t in enumerate(a_ids))
    assert int((batch.labels >= 0).sum()) == len(a_ids)
    assert float(lp.sum()) == pytest.approx(ref, abs=1e-3)


def test_plain_template_and_no_context(llama: Any) -> None:
    plain = make_tokenizer(chat=False)
    b = build_inputs(llama, plain, QUESTION, None)
    assert b.inputs_embeds.shape[1] == len(plain.encode(QUESTION + "\n", add_special_tokens=False))
    with pytest.raises(ctxcomp.InputError, match="no chat template"):
        build_inputs(llama, plain, QUESTION, None, template="chat")
    with pytest.raises(ctxcomp.InputError, match="template must be"):
        build_inputs(llama, plain, QUESTION, None, template="fancy")


def test_other_model_refused(tok: Any) -> None:
    llama = make_lm("llama", len(tok))
    qwen = make_lm("qwen2", len(tok))
    other_llama = make_lm("llama", len(tok), seed=5)
    p = prompt_for(llama, torch.zeros(2, 32))
    check_target(llama, p)
    for m in (qwen, other_llama):
        with pytest.raises(TargetMismatchError, match="made for LM"):
            check_target(m, p)
        with pytest.raises(TargetMismatchError):
            generate(m, tok, QUESTION, p)
    wide = prompt_for(llama, torch.zeros(2, 32)).__class__(
        parts=(LatentPart(torch.zeros(2, 16)),),
        target=p.target,
        hidden_size=16,
        compressor="test",
        config_hash="h",
        budget=p.budget,
        original_tokens=4,
        compressed_tokens=2,
    )
    with pytest.raises(TargetMismatchError, match="width 16"):
        check_target(llama, wide)
    with pytest.raises(TargetMismatchError, match="width 16"):
        build_inputs(llama, tok, QUESTION, list(wide.parts))


def test_bad_inputs(llama: Any, tok: Any) -> None:
    with pytest.raises(ctxcomp.InputError, match="question"):
        build_inputs(llama, tok, "  ", CONTEXT)
    with pytest.raises(ctxcomp.InputError, match="one context"):
        build_inputs(llama, tok, [QUESTION, QUESTION], [CONTEXT])
    long_q = "why " * 600
    with pytest.raises(ctxcomp.InputError, match=r"reads at most 512.*shorten the question"):
        build_inputs(llama, tok, long_q, CONTEXT)
    with pytest.raises(ctxcomp.InputError, match="no answer tokens"):
        answer_logprobs(llama, build_inputs(llama, tok, QUESTION, CONTEXT))


def test_kv_cache_bytes(llama: Any, tok: Any) -> None:
    batch = build_inputs(llama, tok, QUESTION, CONTEXT)
    cache, _ = prefill(llama, batch)
    n = int(batch.inputs_embeds.shape[1])
    cfg = llama.config
    per_pos = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (32 // 4) * 4
    assert kv_cache_bytes(cache) == per_pos * n
