"""Feed a :class:`~ctxcomp.latent.LatentPrompt` to any Hugging Face ``*ForCausalLM``.

The prompt's latent rows are spliced between the token embeddings of the template, the
verbatim text parts and the question, and the LM reads the result through
``inputs_embeds``:

* :func:`build_inputs` — input embeddings, attention mask, position ids (and, to score an
  answer, its labels) for one or more prompts; the model's chat template is used when it has
  one, each latent part standing where a placeholder stood in the rendered template;
* :func:`prefill` — one forward over the prompt: the KV cache and the last logits (what
  time-to-first-token measures);
* :func:`generate` — the answer as text (``model.generate(inputs_embeds=...)``);
* :func:`check_target` — refuses a prompt made for another LM.

Token embeddings always come from ``model.get_input_embeddings()``, so models that scale
their embeddings inside that module (Gemma 3) see rows and tokens in the same space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.fingerprint import model_fingerprint
from ..errors import InputError
from .prompt import LatentPart, LatentPrompt, Part, TextPart

if TYPE_CHECKING:
    import torch

PLACEHOLDER = "<ctxcomp-latent-{}>"
Context = LatentPrompt | Sequence[Part] | str | None
# A prompt layout of a method's own (C3's, say): (tokenizer, parts, question, system) ->
# the prompt as text pieces and latent parts, in order; used where template= takes one.
Template = Callable[[Any, tuple[Part, ...], str, str | None], Sequence[str | LatentPart]]


class TargetMismatchError(InputError):
    """A latent prompt was given to an LM other than the one it was made for."""


def check_target(model: Any, prompt: LatentPrompt) -> None:
    """Raise :class:`TargetMismatchError` unless ``prompt`` was made for ``model`` (same
    weights, same config: :func:`ctxcomp.core.model_fingerprint`) and its rows have the
    model's hidden size."""
    emb = model.get_input_embeddings()
    d = int(emb.weight.shape[1])
    if prompt.hidden_size != d:
        raise TargetMismatchError(
            f"this latent prompt has rows of width {prompt.hidden_size} but the model's "
            f"input embeddings have width {d}: it was made for another LM"
        )
    fp = model_fingerprint(model)
    if fp != prompt.target:
        name = type(model).__name__
        raise TargetMismatchError(
            f"this latent prompt was made for LM {prompt.target} ({prompt.compressor}), not for "
            f"this {name} ({fp}): latent rows only mean something to the model whose embedding "
            "space they were trained for; compress the context again with this model"
        )


@dataclass(frozen=True)
class Spliced:
    """A batch of spliced prompts, left-padded (so generation continues every row).

    ``labels[b, t]`` is the token the LM should predict after position ``t`` (an answer
    token) or -100; ``latent_spans[b]`` lists the (start, end) positions of latent rows."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    latent_spans: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def lengths(self) -> list[int]:
        """Real (unpadded) positions of each row."""
        return [int(x) for x in self.attention_mask.sum(dim=1)]


def _as_parts(context: Context) -> tuple[Part, ...]:
    if context is None:
        return ()
    if isinstance(context, str):
        return (TextPart(context, "context"),) if context else ()
    if isinstance(context, LatentPrompt):
        return context.parts
    return tuple(context)


def render_template(
    tokenizer: Any,
    user: str,
    *,
    system: str | None = None,
    template: str = "auto",
) -> str:
    """The prompt text around a user message: the tokenizer's chat template with a
    generation prompt (``template="chat"``, or ``"auto"`` when it has one), else the
    message itself followed by a newline (``"plain"``)."""
    if template not in ("auto", "chat", "plain"):
        raise InputError(f"template must be 'auto', 'chat' or 'plain', got {template!r}")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise InputError("template='chat' but this tokenizer has no chat template")
    if template == "plain" or not has_chat:
        return (f"{system}\n\n" if system else "") + user + "\n"
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    out = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return str(out)


def _pieces(
    tokenizer: Any,
    parts: tuple[Part, ...],
    question: str,
    system: str | None,
    template: str | Template,
) -> list[str | LatentPart]:
    """Template text split around the latent parts (text pieces stay strings)."""
    if callable(template):
        return list(template(tokenizer, parts, question, system))
    body: list[str] = []
    latent: list[LatentPart] = []
    for p in parts:
        if isinstance(p, LatentPart):
            body.append(PLACEHOLDER.format(len(latent)))
            latent.append(p)
        else:
            body.append(p.text)
    context = "".join(body)
    user = f"{context}\n\n{question}" if context else question
    text = render_template(tokenizer, user, system=system, template=template)
    out: list[str | LatentPart] = []
    pos = 0
    for i, p in enumerate(latent):
        mark = PLACEHOLDER.format(i)
        at = text.find(mark, pos)
        if at < 0 or text.count(mark) != 1:
            raise InputError(
                f"the chat template did not keep the latent placeholder {mark!r} exactly once"
            )
        out.append(text[pos:at])
        out.append(p)
        pos = at + len(mark)
    out.append(text[pos:])
    return out


def _encode(tokenizer: Any, text: str, first: bool) -> list[int]:
    """Token ids of a template piece; BOS only before the first piece, and only when the
    tokenizer adds one and the template did not already write it."""
    ids = list(tokenizer.encode(text, add_special_tokens=False)) if text else []
    bos = getattr(tokenizer, "bos_token_id", None)
    adds_bos = bool(getattr(tokenizer, "add_bos_token", False))
    if first and adds_bos and bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def max_positions(model: Any) -> int | None:
    """The LM's position limit (``max_position_embeddings``), when it states one."""
    cfg: Any = getattr(model, "config", None)
    if hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()
    n = getattr(cfg, "max_position_embeddings", None)
    return int(n) if n else None


def build_inputs(
    model: Any,
    tokenizer: Any,
    questions: str | Sequence[str],
    contexts: Context | Sequence[Context],
    *,
    answers: str | Sequence[str] | None = None,
    system: str | None = None,
    template: str | Template = "auto",
    check: bool = True,
) -> Spliced:
    """Spliced input embeddings for one prompt, or a batch (``questions`` and ``contexts``
    as equal-length lists).

    A context is a :class:`LatentPrompt`, a sequence of parts, plain text or ``None`` (no
    context). With ``answers``, each answer's tokens follow the generation prompt and
    ``labels`` mark them (for log-likelihoods and distillation). Latent prompts are checked
    against ``model`` (:func:`check_target`) unless ``check=False``. ``template`` is
    ``"auto"``/``"chat"``/``"plain"`` (:func:`render_template`) or a method's own layout, a
    :data:`Template` callable returning the prompt's text pieces and latent parts in order.
    """
    import torch

    if isinstance(questions, str):
        qs: list[str] = [questions]
        ctxs: list[Context] = [contexts]  # type: ignore[list-item]
        ans = [answers] if isinstance(answers, str) else answers
    else:
        qs = list(questions)
        ctxs = list(contexts)  # type: ignore[arg-type]
        ans = answers
    if len(ctxs) != len(qs) or (ans is not None and len(ans) != len(qs)):
        raise InputError("give one context (and one answer, if any) per question")
    emb = model.get_input_embeddings()
    w = emb.weight
    limit = max_positions(model)
    rows: list[torch.Tensor] = []
    labels: list[list[int]] = []
    spans: list[tuple[tuple[int, int], ...]] = []
    for i, (q, ctx) in enumerate(zip(qs, ctxs)):
        if not isinstance(q, str) or not q.strip():
            raise InputError("the question must be a non-empty string")
        if isinstance(ctx, LatentPrompt) and check:
            check_target(model, ctx)
        pieces = _pieces(tokenizer, _as_parts(ctx), q, system, template)
        chunks: list[torch.Tensor] = []
        lab: list[int] = []
        sp: list[tuple[int, int]] = []
        n = 0
        for j, piece in enumerate(pieces):
            if isinstance(piece, LatentPart):
                r = piece.rows.to(device=w.device, dtype=w.dtype)
                if int(r.shape[1]) != int(w.shape[1]):
                    raise TargetMismatchError(
                        f"latent rows of width {int(r.shape[1])} cannot be read by a model "
                        f"with input embeddings of width {int(w.shape[1])}"
                    )
                chunks.append(r)
                sp.append((n, n + int(r.shape[0])))
                lab.extend([-100] * int(r.shape[0]))
                n += int(r.shape[0])
                continue
            ids = _encode(tokenizer, piece, first=j == 0)
            if ids:
                chunks.append(emb(torch.tensor(ids, device=w.device)))
                lab.extend([-100] * len(ids))
                n += len(ids)
        prompt_len = n
        if ans is not None:
            a_ids = list(tokenizer.encode(ans[i], add_special_tokens=False))
            if not a_ids:
                raise InputError(f"answer {i} has no tokens")
            chunks.append(emb(torch.tensor(a_ids, device=w.device)))
            lab[-1:] = [a_ids[0]]
            lab.extend([*a_ids[1:], -100])
            n += len(a_ids)
        if limit is not None and n > limit:
            q_len = len(tokenizer.encode(q, add_special_tokens=False))
            raise InputError(
                f"the prompt needs {n} positions ({prompt_len - q_len} for the template and "
                f"context, {q_len} for the question) but the model reads at most {limit}: "
                "shorten the question or compress the context harder"
            )
        rows.append(torch.cat(chunks, dim=0))
        labels.append(lab)
        spans.append(tuple(sp))
    return _left_pad(rows, labels, spans)


def _left_pad(
    rows: list[torch.Tensor],
    labels: list[list[int]],
    spans: list[tuple[tuple[int, int], ...]],
) -> Spliced:
    import torch

    n = max(int(r.shape[0]) for r in rows)
    d = int(rows[0].shape[1])
    b = len(rows)
    ref = rows[0]
    embeds = torch.zeros(b, n, d, dtype=ref.dtype, device=ref.device)
    mask = torch.zeros(b, n, dtype=torch.long, device=ref.device)
    lab = torch.full((b, n), -100, dtype=torch.long, device=ref.device)
    shifted = []
    for i, r in enumerate(rows):
        k = int(r.shape[0])
        embeds[i, n - k :] = r
        mask[i, n - k :] = 1
        lab[i, n - k :] = torch.tensor(labels[i], dtype=torch.long, device=ref.device)
        shifted.append(tuple((a + n - k, e + n - k) for a, e in spans[i]))
    pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return Spliced(embeds, mask, pos, lab, tuple(shifted))


def answer_window_logits(model: Any, batch: Spliced) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward over ``batch`` with logits only for the last ``k`` positions (those that
    hold every label): ``(logits [b, k, vocab] float32, labels [b, k])``."""
    labelled = (batch.labels >= 0).any(dim=0).nonzero()
    if labelled.numel() == 0:
        raise InputError("no answer tokens to score: build the inputs with answers=...")
    keep = int(batch.labels.shape[1]) - int(labelled[0])  # answers sit at the (left-padded) end
    out = model(
        inputs_embeds=batch.inputs_embeds,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
        logits_to_keep=keep,
    )
    return out.logits.float(), batch.labels[:, -keep:]


def answer_logprobs(model: Any, batch: Spliced) -> torch.Tensor:
    """Log-probabilities of the labelled answer tokens, ``[b, k]`` for the last ``k``
    positions (those that hold every label; 0 where unlabelled): one forward, logits only
    for those positions. Sum over dim 1 for an answer's log-likelihood."""
    import torch

    logits, labels = answer_window_logits(model, batch)
    lp = torch.log_softmax(logits, dim=-1)
    got = lp.gather(2, labels.clamp(min=0)[..., None])[..., 0]
    return torch.where(labels >= 0, got, torch.zeros_like(got))


def prefill(model: Any, batch: Spliced) -> tuple[Any, torch.Tensor]:
    """Run the prompt once: ``(past_key_values, last_logits [b, vocab])``. Time this to get
    time-to-first-token."""
    import torch

    with torch.inference_mode():
        out = model(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=True,
            logits_to_keep=1,
        )
    cache = out.get("cache") if hasattr(out, "get") else None  # transformers >= 5.2x name
    if cache is None:
        cache = out.past_key_values
    return cache, out.logits[:, -1]


def kv_cache_bytes(past_key_values: Any) -> int:
    """Bytes held by a KV cache (a transformers ``Cache`` or legacy tuples)."""
    import torch

    seen: set[int] = set()
    total = 0

    def visit(x: Any) -> None:
        nonlocal total
        if isinstance(x, torch.Tensor):
            if id(x) not in seen:
                seen.add(id(x))
                total += x.numel() * x.element_size()
        elif isinstance(x, (list, tuple)):
            for y in x:
                visit(y)
        elif hasattr(x, "layers"):  # transformers >= 4.56 Cache: one object per layer
            for layer in x.layers:
                visit([getattr(layer, "keys", None), getattr(layer, "values", None)])
        elif hasattr(x, "key_cache"):
            visit([x.key_cache, x.value_cache])

    visit(past_key_values)
    return total


def generate(
    model: Any,
    tokenizer: Any,
    question: str,
    latent_prompt: Context,
    *,
    system: str | None = None,
    template: str | Template = "auto",
    **generate_kwargs: Any,
) -> str:
    """Answer ``question`` from a latent prompt (or parts, text, ``None``) with
    ``model.generate``; greedy, 64 new tokens unless ``generate_kwargs`` say otherwise.
    Returns the new text only."""
    import torch

    batch = build_inputs(
        model, tokenizer, question, latent_prompt, system=system, template=template
    )
    kw: dict[str, Any] = {"max_new_tokens": 64, "do_sample": False}
    kw.update(generate_kwargs)
    if kw.get("pad_token_id") is None and getattr(tokenizer, "pad_token_id", None) is None:
        kw["pad_token_id"] = getattr(tokenizer, "eos_token_id", None)
    with torch.inference_mode():
        out = model.generate(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask, **kw
        )
    return str(tokenizer.decode(out[0], skip_special_tokens=True))
