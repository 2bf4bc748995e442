"""The text of a request, by part: where it lives in the JSON body and what kind of text it is.

Three request shapes: OpenAI ``/v1/chat/completions`` (``messages``), OpenAI
``/v1/completions`` (``prompt``) and Anthropic ``/v1/messages`` (``system`` + ``messages``
with content blocks). Each text is a :class:`Part` that can write a new text back into the
body in place; everything else in the body (images, tool calls, thinking blocks, unknown
fields) is never touched. A body whose shape is not recognised yields no parts: the request
is forwarded as is and the upstream answers it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MESSAGE_OVERHEAD = 4  # tokens a chat template adds per message (role, delimiters)


@dataclass(eq=False)  # parts are compared by identity
class Part:
    """One text of the request. ``kind`` is one of ``config.PART_KINDS``."""

    kind: str
    text: str
    write: Callable[[str], None]
    question_turn: bool = False  # the last text of the last user turn: holds the question


@dataclass
class Conversation:
    """Texts that share one budget (a chat request, or one prompt of a completions batch)."""

    parts: list[Part] = field(default_factory=list)
    overhead: list[str] = field(default_factory=list)  # counted, never compressed (tool specs)
    messages: int = 0

    @property
    def question_part(self) -> Part | None:
        return next((p for p in self.parts if p.question_turn), None)


def extract(route: str, body: dict[str, Any]) -> list[Conversation]:
    """The conversations of a request body (empty when the shape is not recognised)."""
    if route == "/v1/chat/completions":
        return _openai_chat(body)
    if route == "/v1/completions":
        return _completions(body)
    if route == "/v1/messages":
        return _anthropic(body)
    return []


def _setter(obj: dict[str, Any], key: str) -> Callable[[str], None]:
    def write(text: str) -> None:
        obj[key] = text

    return write


def _tools_overhead(body: dict[str, Any]) -> list[str]:
    out = []
    for key in ("tools", "functions", "tool_choice", "response_format"):
        if key in body and body[key] is not None:
            out.append(json.dumps(body[key], ensure_ascii=False))
    return out


def _mark_question(last_user: list[Part]) -> None:
    if last_user:
        last_user[-1].question_turn = True


def _openai_chat(body: dict[str, Any]) -> list[Conversation]:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return []
    conv = Conversation(overhead=_tools_overhead(body), messages=len(msgs))
    last_user: list[Part] = []
    for msg in msgs:
        if not isinstance(msg, dict):
            return []
        role = msg.get("role")
        kind = {
            "system": "system",
            "developer": "system",
            "user": "user",
            "assistant": "assistant",
            "tool": "tool",
            "function": "tool",
        }.get(role if isinstance(role, str) else "")
        content = msg.get("content")
        if kind is None:
            continue
        texts: list[Part] = []
        if isinstance(content, str):
            texts.append(Part(kind, content, _setter(msg, "content")))
        elif isinstance(content, list):
            for item in content:
                if (
                    isinstance(item, dict)
                    and item.get("type") == "text"
                    and isinstance(item.get("text"), str)
                ):
                    texts.append(Part(kind, item["text"], _setter(item, "text")))
        if kind == "user" and len(texts) > 1:  # several text parts: documents, then the turn
            for p in texts[:-1]:
                p.kind = "document"
        conv.parts.extend(texts)
        if kind == "user" and texts:
            last_user = texts
    _mark_question(last_user)
    return [conv]


def _completions(body: dict[str, Any]) -> list[Conversation]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [_one_prompt(Part("prompt", prompt, _setter(body, "prompt")))]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):

        def setter(i: int) -> Callable[[str], None]:
            def write(text: str) -> None:
                prompt[i] = text

            return write

        return [_one_prompt(Part("prompt", p, setter(i))) for i, p in enumerate(prompt)]
    return []  # token ids (or nothing): not text we can compress


def _one_prompt(part: Part) -> Conversation:
    part.question_turn = True
    return Conversation(parts=[part])


def _anthropic_blocks(owner: dict[str, Any], key: str, kind: str) -> list[Part]:
    """Text parts of ``owner[key]``: a string, or a list of content blocks."""
    content = owner.get(key)
    if isinstance(content, str):
        return [Part(kind, content, _setter(owner, key))]
    out: list[Part] = []
    if not isinstance(content, list):
        return out
    for block in content:
        if not isinstance(block, dict):
            continue
        t = block.get("type")
        if t == "text" and isinstance(block.get("text"), str):
            out.append(Part(kind, block["text"], _setter(block, "text")))
        elif t == "tool_result":
            out.extend(_anthropic_blocks(block, "content", "tool"))
        elif t == "document":
            src = block.get("source")
            if isinstance(src, dict) and src.get("type") == "text":
                if isinstance(src.get("data"), str):
                    out.append(Part("document", src["data"], _setter(src, "data")))
            elif isinstance(src, dict) and src.get("type") == "content":
                out.extend(_anthropic_blocks(src, "content", "document"))
    return out


def _anthropic(body: dict[str, Any]) -> list[Conversation]:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return []
    conv = Conversation(overhead=_tools_overhead(body), messages=len(msgs) + 1)
    conv.parts.extend(_anthropic_blocks(body, "system", "system"))
    last_user: list[Part] = []
    for msg in msgs:
        if not isinstance(msg, dict):
            return []
        role = msg.get("role")
        if role not in ("user", "assistant"):
            continue
        parts = _anthropic_blocks(msg, "content", role)
        turn = [p for p in parts if p.kind == "user"]
        if len(turn) > 1:
            for p in turn[:-1]:
                p.kind = "document"
        conv.parts.extend(parts)
        if turn:
            last_user = turn[-1:]
    _mark_question(last_user)
    return [conv]
