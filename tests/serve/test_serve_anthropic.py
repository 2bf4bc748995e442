"""The official anthropic client against the proxy's /v1/messages (real servers on loopback)."""

from __future__ import annotations

import asyncio

import pytest
from fake_upstream import FakeUpstream
from serve_helpers import is_subsequence

anthropic = pytest.importorskip("anthropic")


def client(proxy: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy, api_key="sk-ant-test", max_retries=0, timeout=60)


def rag_request(essays: dict[str, str]) -> dict:
    doc = essays["gap"][:3000]
    tool_text = essays["want"][:2000]
    return {
        "model": "echo",
        "max_tokens": 6,
        "system": "You answer from the documents.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": doc},
                        "title": "gap",
                    },
                    {"type": "text", "text": "What does the essay say about wealth?"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "tu_1", "name": "search", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": tool_text},
                    {"type": "text", "text": "Use this too."},
                ],
            },
        ],
    }


def test_messages_non_streaming(proxy: str, fake: FakeUpstream, essays: dict[str, str]) -> None:
    req = rag_request(essays)
    with client(proxy) as c:
        raw = c.messages.with_raw_response.create(**req)
    msg = raw.parse()
    assert msg.content[0].text == "tok0 tok1 tok2 tok3 tok4 tok5 "
    assert raw.headers["x-ctxcomp-status"] == "compressed"
    assert int(raw.headers["x-ctxcomp-tokens-after"]) < int(raw.headers["x-ctxcomp-tokens-before"])
    seen = fake.last()
    assert seen.path == "/v1/messages"
    # the client's key passes through, in the header the SDK put it in
    sent_auth = raw.http_request.headers
    for h in ("x-api-key", "authorization"):
        assert seen.headers.get(h) == sent_auth.get(h)
    assert "sk-ant-test" in (
        seen.headers.get("x-api-key", "") + seen.headers.get("authorization", "")
    )
    assert seen.headers["anthropic-version"]
    sent = seen.body
    orig = req["messages"]
    doc_in = orig[0]["content"][0]["source"]["data"]
    doc_out = sent["messages"][0]["content"][0]["source"]["data"]
    tool_in = orig[2]["content"][0]["content"]
    tool_out = sent["messages"][2]["content"][0]["content"]
    # each compressed part is shorter and a subsequence of its original, or, when the
    # question-aware stage dropped it whole, the placeholder
    for out, inp in ((doc_out, doc_in), (tool_out, tool_in)):
        assert out == "[omitted]" or (len(out) < len(inp) and is_subsequence(out, inp))
    assert doc_out != "[omitted]" or tool_out != "[omitted]"
    # everything else untouched: system, the question, the tool call, block metadata
    assert sent["system"] == req["system"]
    assert sent["messages"][0]["content"][1] == orig[0]["content"][1]
    assert sent["messages"][1] == orig[1]
    assert sent["messages"][2]["content"][1] == orig[2]["content"][1]
    assert sent["messages"][0]["content"][0]["title"] == "gap"


def test_messages_streaming_sync_and_async(proxy: str, essays: dict[str, str]) -> None:
    req = {**rag_request(essays), "max_tokens": 15}
    with client(proxy) as c, c.messages.stream(**req) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == [f"tok{i} " for i in range(15)]
    assert final.stop_reason == "end_turn"

    async def main() -> list[str]:
        c = anthropic.AsyncAnthropic(base_url=proxy, api_key="sk-ant-test", max_retries=0)
        out = []
        stream = await c.messages.create(**req, stream=True)
        async for event in stream:
            if event.type == "content_block_delta":
                out.append(event.delta.text)
        await c.close()
        return out

    assert asyncio.run(main()) == texts
