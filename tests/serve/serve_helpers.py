"""Checks shared by the proxy tests."""

from __future__ import annotations

import json
import re
from typing import Any

import ctxcomp

_WS = re.compile(r"\s+")
KEEP = "<ctxcomp:keep>", "</ctxcomp:keep>"


def is_subsequence(short: str, long: str) -> bool:
    """The non-space characters of ``short`` appear in ``long`` in order."""
    it = iter(_WS.sub("", long))
    return all(c in it for c in _WS.sub("", short))


def chat_tokens(body: dict[str, Any], reader: str = "cl100k_base") -> int:
    """A chat request's prompt tokens as docs/proxy.md defines them: message texts, plus 4
    per message, plus tool definitions as JSON."""
    tok = ctxcomp.get_tokenizer(reader)
    total = 4 * len(body["messages"])
    for m in body["messages"]:
        c = m.get("content")
        if isinstance(c, str):
            total += tok.count(c)
        elif isinstance(c, list):
            total += sum(tok.count(p["text"]) for p in c if p.get("type") == "text")
    for key in ("tools", "functions", "tool_choice", "response_format"):
        if body.get(key) is not None:
            total += tok.count(json.dumps(body[key], ensure_ascii=False))
    return total


def rag_messages(docs: list[str], question: str) -> list[dict[str, Any]]:
    """A tool-calling RAG conversation: retrieved documents come back as tool results."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer from the retrieved documents only."},
        {"role": "user", "content": question},
    ]
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": "search", "arguments": "{}"}}
        for i in range(len(docs))
    ]
    msgs.append({"role": "assistant", "content": None, "tool_calls": calls})
    msgs += [
        {"role": "tool", "tool_call_id": f"call_{i}", "content": d} for i, d in enumerate(docs)
    ]
    return msgs
