"""What the proxy itself says: error bodies, in-stream error events, ``x-ctxcomp-*`` headers.

Error bodies take one shape both SDKs read: ``{"type": "error", "error": {"message", "type",
"param", "code"}}`` (OpenAI's ``error`` object; Anthropic's ``type: error`` envelope).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .engine import Outcome

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def error_body(message: str, type_: str, code: str | None = None) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"message": message, "type": type_, "param": None, "code": code}}
    ).encode()


def stream_error_event(route: str, message: str, code: str) -> bytes:
    """An SSE event that makes the client's SDK raise (after a failure mid-stream)."""
    if route == "/v1/messages":
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    data = {"error": {"message": message, "type": "upstream_error", "param": None, "code": code}}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def header_value(text: str, limit: int = 300) -> bytes:
    """Printable ASCII of at most ``limit`` characters (header-safe)."""
    return _UNSAFE.sub("?", text)[:limit].encode("ascii")


def outcome_headers(o: Outcome | None, namespace: str | None) -> list[tuple[bytes, bytes]]:
    """``x-ctxcomp-*`` response headers describing what was done to the request."""
    if o is None:
        return []
    h: list[tuple[str, Any]] = [("x-ctxcomp-status", o.status)]
    if o.reason:
        h.append(("x-ctxcomp-reason", o.reason))
    if o.tokens_before is not None:
        h.append(("x-ctxcomp-tokens-before", o.tokens_before))
    if o.tokens_after is not None:
        h.append(("x-ctxcomp-tokens-after", o.tokens_after))
    h.append(("x-ctxcomp-compression-ms", f"{o.compression_ms:.1f}"))
    if o.reader:
        h.append(("x-ctxcomp-reader", o.reader))
    if namespace:
        h.append(("x-ctxcomp-tenant", namespace))
    return [(k.encode(), header_value(str(v))) for k, v in h]
