"""Reading C3 latents back: :func:`reconstruct` (the text) and :func:`answer` (a question).

Both splice the latent prompt into the decoder's ``inputs_embeds`` with C3's template
(:func:`ctxcomp.latent.build_inputs`, ``template=model.template``) and decode greedily until
the template's end of turn. A prompt made for another decoder is refused
(:func:`ctxcomp.latent.check_target`). :func:`reconstruct` decodes each chunk's block on its
own — the task C3 is trained on — in one batched ``generate`` call, and joins the pieces;
:func:`answer` puts every block in one prompt before the question.
"""

from __future__ import annotations

import warnings
from typing import Any

from ...errors import InputError
from ..generate import build_inputs, check_target
from ..prompt import LatentPrompt
from .layout import CascadeModel


def stop_kwargs(model: CascadeModel) -> dict[str, Any]:
    """``generate`` arguments that end the answer at the template's end of turn."""
    tok = model.decoder_tokenizer
    end = tok(model.template.stop, add_special_tokens=False)["input_ids"]
    eos = getattr(tok, "eos_token_id", None)
    kw: dict[str, Any] = {"pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else eos}
    if len(end) == 1:
        kw["eos_token_id"] = [end[0]] + ([eos] if eos is not None and eos != end[0] else [])
    else:
        kw.update(stop_strings=[model.template.stop], tokenizer=tok)
    return kw


def _decode(
    model: CascadeModel,
    questions: list[str],
    contexts: list[list[Any]],
    max_new_tokens: int,
    **generate_kwargs: Any,
) -> list[str]:
    import torch

    dec, tok = model.decoder, model.decoder_tokenizer
    batch = build_inputs(dec, tok, questions, contexts, template=model.template, check=False)
    kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    kw.update(stop_kwargs(model))
    kw.update(generate_kwargs)
    with torch.inference_mode(), warnings.catch_warnings():
        # n-gram blocking sees only new tokens here (the prompt is mostly latent rows): meant
        warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*inputs_embeds")
        out = dec.generate(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask, **kw
        )
    texts = []
    for row in out:
        t = str(tok.decode(row, skip_special_tokens=False))
        cut = t.find(model.template.stop)
        t = t[:cut] if cut >= 0 else t
        for s in (tok.pad_token, tok.eos_token):
            if s:
                t = t.replace(s, "")
        texts.append(t)
    return texts


def reconstruct(
    model: CascadeModel,
    prompt: LatentPrompt,
    *,
    max_new_tokens: int | None = None,
    joiner: str = "",
    no_repeat_ngram_size: int = 20,
    **generate_kwargs: Any,
) -> str:
    """The context written back from its latents, chunk by chunk ("Repeat the text: ").

    ``max_new_tokens`` per chunk defaults to 1.5x the prompt's chunk length plus 8 (the
    text needs about the chunk length; more lets a wrong reading show). C3's own decoding
    uses ``no_repeat_ngram_size=20`` (kept as the default)."""
    check_target(model.decoder, prompt)
    parts = list(prompt.latent_parts)
    if not parts:
        raise InputError("this latent prompt has no latent parts to reconstruct")
    chunk = int(prompt.meta.get("chunk_tokens") or model.chunk_tokens)
    n_new = max_new_tokens or int(1.5 * chunk) + 8
    pieces = _decode(
        model,
        [model.template.reconstruct] * len(parts),
        [[p] for p in parts],
        n_new,
        no_repeat_ngram_size=no_repeat_ngram_size,
        **generate_kwargs,
    )
    return joiner.join(pieces)


def answer(
    model: CascadeModel,
    question: str,
    prompt: LatentPrompt,
    *,
    max_new_tokens: int = 64,
    **generate_kwargs: Any,
) -> str:
    """The decoder's answer to ``question`` given every latent block of ``prompt``."""
    check_target(model.decoder, prompt)
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question must be a non-empty string")
    return _decode(model, [question], [list(prompt.parts)], max_new_tokens, **generate_kwargs)[
        0
    ].strip()
