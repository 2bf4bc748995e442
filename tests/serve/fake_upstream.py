"""A fake model server (raw ASGI, served by uvicorn on loopback) and a server-in-a-thread helper.

The fake speaks the OpenAI chat/completions and Anthropic messages shapes, checks that the
requests it gets are well formed, records them, and behaves as the request's ``model`` says:

- ``echo`` (anything else): a normal answer (``stream: true``: ``n`` chunks of ``tok<i>``;
  ``n`` is ``max_tokens`` or 5), one chunk every ``gap`` seconds (``metadata.gap``, default 0)
  after ``metadata.ttfb`` seconds (default 0)
- ``error-500`` / ``error-429``: that status with an OpenAI error body
- ``hang``: never answers (until the client goes)
- ``drop``: streams 3 chunks, then breaks the connection (``drop-json``: a JSON body cut short)
- ``slow-stream``: 400 chunks 25 ms apart, watching for the client's disconnection

It also serves the benchmark: with ``metadata.rid`` chunk ``i`` carries ``<rid>:<i>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    t: float = field(default_factory=time.monotonic)
    chunks_sent: int = 0
    finished: bool = False
    disconnected_at: float | None = None


class FakeUpstream:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()

    def last(self) -> Seen:
        with self.lock:
            return self.seen[-1]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw) if raw else None
        seen = Seen(scope["method"], scope["path"], headers, body, raw)
        with self.lock:
            self.seen.append(seen)
        path = scope["path"]
        if scope["method"] == "GET" and path == "/v1/models":
            data = {
                "object": "list",
                "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "fake"}],
            }
            return await _json(send, 200, data)
        problem = _invalid(path, body)
        if problem:
            return await _json(
                send, 400, {"error": {"message": problem, "type": "invalid_request_error"}}
            )
        model = body.get("model", "echo")
        if model == "error-500":
            return await _json(
                send, 500, {"error": {"message": "upstream exploded", "type": "server_error"}}
            )
        if model == "error-429":
            return await _json(
                send,
                429,
                {"error": {"message": "slow down", "type": "rate_limit"}},
                [(b"retry-after", b"7")],
            )
        if model == "hang":
            await _until_disconnect(receive, seen)
            return
        stream = bool(body.get("stream"))
        meta = body.get("metadata") or {}
        if model == "slow-stream":
            return await self._stream(send, receive, seen, path, body, n=400, gap=0.025)
        if model == "drop-json":  # a non-streaming body cut short
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"1000"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id": "cut', "more_body": True})
            raise RuntimeError("fake upstream: connection dropped on purpose")
        if model == "drop":
            await self._stream(send, receive, seen, path, body, n=10, gap=0.0, cut=3)
            raise RuntimeError("fake upstream: connection dropped on purpose")
        n = int(body.get("max_tokens") or 5)
        await asyncio.sleep(float(meta.get("ttfb", 0)))
        if stream:
            return await self._stream(
                send, receive, seen, path, body, n=n, gap=float(meta.get("gap", 0))
            )
        await asyncio.sleep(float(meta.get("gap", 0)) * n)
        text = "".join(_token(meta, i) for i in range(n))
        await _json(
            send, 200, _answer(path, body, text), [(b"x-upstream-digest", _digest(raw).encode())]
        )
        seen.finished = True

    async def _stream(
        self,
        send: Any,
        receive: Any,
        seen: Seen,
        path: str,
        body: Any,
        *,
        n: int,
        gap: float,
        cut: int | None = None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"x-upstream-digest", _digest(seen.raw).encode()),
                ],
            }
        )
        watcher = asyncio.ensure_future(_until_disconnect(receive, seen))
        meta = body.get("metadata") or {}
        try:
            events = _events(path, body, [_token(meta, i) for i in range(n)])[:cut]
            for i, ev in enumerate(events):
                if seen.disconnected_at is not None:
                    return
                await send({"type": "http.response.body", "body": ev, "more_body": True})
                seen.chunks_sent = i + 1
                if gap and i < len(events) - 1:
                    await asyncio.sleep(gap)
            if cut is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                seen.finished = True
        finally:
            watcher.cancel()


def _token(meta: dict[str, Any], i: int) -> str:
    rid = meta.get("rid")
    return f"{rid}:{i} " if rid else f"tok{i} "


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


async def _until_disconnect(receive: Any, seen: Seen) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            seen.disconnected_at = time.monotonic()
            return


async def _json(
    send: Any, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _invalid(path: str, body: Any) -> str | None:
    """What a strict server would refuse (empty texts, missing fields)."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "body must be an object with a model"
    if path == "/v1/completions":
        return None if isinstance(body.get("prompt"), (str, list)) else "prompt missing"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages must be a non-empty list"
    for i, m in enumerate(msgs):
        c = m.get("content")
        if isinstance(c, str) and not c and m.get("role") != "assistant":
            return f"messages[{i}].content is empty"
        if isinstance(c, list):
            for b in c:
                if b.get("type") == "text" and not b.get("text"):
                    return f"messages[{i}] has an empty text block"
    return None


def _answer(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    if path == "/v1/messages":
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    if path == "/v1/completions":
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


def _events(path: str, body: dict[str, Any], tokens: list[str]) -> list[bytes]:
    model = body["model"]
    if path == "/v1/messages":
        msg = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 0},
        }
        out = [
            _sse({"type": "message_start", "message": msg}, "message_start"),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
        ]
        out += [
            _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": t},
                },
                "content_block_delta",
            )
            for t in tokens
        ]
        out += [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(tokens)},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return out
    if path == "/v1/completions":
        out = [
            _sse(
                {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "text": t, "finish_reason": None, "logprobs": None}],
                }
            )
            for t in tokens
        ]
    else:
        out = [
            _sse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}],
                }
            )
            for t in tokens
        ]
    return [*out, b"data: [DONE]\n\n"]


class LoopbackServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (ephemeral port) in a thread."""

    def __init__(self, app: Any, *, start_timeout: float = 120.0, **kw: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        cfg = uvicorn.Config(
            app, log_level="warning", access_log=False, ws="none", lifespan="on", **kw
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
