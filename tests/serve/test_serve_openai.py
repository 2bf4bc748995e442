"""The official openai client against the proxy (real uvicorn servers on loopback)."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from fake_upstream import FakeUpstream
from serve_helpers import chat_tokens, is_subsequence, rag_messages


@pytest.fixture(scope="module")
def docs(essays: dict[str, str]) -> list[str]:
    return [essays["addiction"][:2500], essays["avg"][:2500], essays["copy"][:1500]]


def client(proxy: str, key: str = "sk-test-alpha") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy + "/v1", api_key=key, max_retries=0, timeout=60)


def test_chat_non_streaming_compresses_tool_results(
    proxy: str, fake: FakeUpstream, docs: list[str]
) -> None:
    msgs = rag_messages(docs, "Why are technologies becoming more addictive?")
    with client(proxy) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="echo", messages=msgs, temperature=0.2, extra_headers={"x-trace": "t1"}
        )
    completion = raw.parse()
    seen = fake.last()
    sent = seen.body
    # the client gets the upstream's answer and headers untouched, plus ctxcomp's headers
    assert completion.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert raw.headers["x-upstream-digest"]
    assert raw.headers["x-ctxcomp-status"] == "compressed"
    before = int(raw.headers["x-ctxcomp-tokens-before"])
    after = int(raw.headers["x-ctxcomp-tokens-after"])
    assert before == chat_tokens({"messages": msgs})
    assert after == chat_tokens(sent) < before
    assert float(raw.headers["x-ctxcomp-compression-ms"]) > 0
    # the upstream sees a normal request: same fields, same non-compressed messages
    assert sent["model"] == "echo" and sent["temperature"] == 0.2
    assert len(sent["messages"]) == len(msgs)
    compressed = 0
    for got, orig in zip(sent["messages"], msgs):
        assert {k: v for k, v in got.items() if k != "content"} == {
            k: v for k, v in orig.items() if k != "content"
        }
        if orig["role"] != "tool":
            assert got["content"] == orig["content"]  # system and user turns untouched
        elif got["content"] != "[omitted]":  # a document the coarse stage drops whole
            assert got["content"] and is_subsequence(got["content"], orig["content"])
            compressed += 1
    assert compressed >= 1
    # ratio 0.5 of the tool results (the compressor holds the target over their texts)
    tool_before = before - chat_tokens({"messages": msgs[:3]}) - 4 * len(docs)
    tool_after = after - chat_tokens({"messages": msgs[:3]}) - 4 * len(docs)
    assert tool_after <= tool_before // 2 + len(docs)
    # ctxcomp's own headers never reach the upstream; the client's do
    assert seen.headers["x-trace"] == "t1"
    assert not [h for h in seen.headers if h.startswith("x-ctxcomp")]
    assert seen.headers["authorization"] == "Bearer sk-test-alpha"


def test_chat_streaming_sync_passes_chunks_in_order(proxy: str, fake: FakeUpstream) -> None:
    msgs = [{"role": "user", "content": "Say something."}]
    with (
        client(proxy) as c,
        c.chat.completions.with_streaming_response.create(
            model="echo", messages=msgs, stream=True, max_tokens=30, metadata={"gap": "0.02"}
        ) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-ctxcomp-status"] == "skipped"  # nothing long enough
        got, first_at = [], None
        for chunk in resp.parse():
            first_at = first_at or time.monotonic()
            got.append(chunk.choices[0].delta.content)
    seen = fake.last()
    assert got == [f"tok{i} " for i in range(30)]
    assert seen.finished
    # streamed as produced: the first chunk arrived long before the upstream's last
    assert first_at is not None and first_at < seen.t + 0.5 * 30 * 0.02


def test_chat_async_streaming_and_not(proxy: str, docs: list[str]) -> None:
    async def main() -> tuple[list[str], str]:
        c = openai.AsyncOpenAI(base_url=proxy + "/v1", api_key="sk-test-alpha", max_retries=0)
        msgs = rag_messages(docs[:2], "What is the copy essay about?")
        stream = await c.chat.completions.create(
            model="echo", messages=msgs, stream=True, max_tokens=12
        )
        parts = [ch.choices[0].delta.content async for ch in stream]
        plain = await c.chat.completions.create(model="echo", messages=msgs, max_tokens=3)
        await c.close()
        return parts, plain.choices[0].message.content or ""

    parts, plain = asyncio.run(main())
    assert parts == [f"tok{i} " for i in range(12)]
    assert plain == "tok0 tok1 tok2 "


def test_concurrent_async_streams_do_not_mix(proxy: str) -> None:
    async def one(c: openai.AsyncOpenAI, rid: str) -> list[str]:
        stream = await c.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": f"request {rid}"}],
            stream=True,
            max_tokens=20,
            metadata={"rid": rid, "gap": "0.005"},
        )
        return [ch.choices[0].delta.content async for ch in stream]

    async def main() -> list[list[str]]:
        c = openai.AsyncOpenAI(base_url=proxy + "/v1", api_key="sk-test-alpha", max_retries=0)
        out = await asyncio.gather(*(one(c, f"r{i}") for i in range(16)))
        await c.close()
        return list(out)

    for i, tokens in enumerate(asyncio.run(main())):
        assert tokens == [f"r{i}:{j} " for j in range(20)]


def test_completions_prompt_and_batch(proxy: str, fake: FakeUpstream, docs: list[str]) -> None:
    prompt = docs[0] + "\n\nQuestion: what is the essay's main claim?"
    c = client(proxy)
    raw = c.completions.with_raw_response.create(model="echo", prompt=prompt, max_tokens=2)
    assert raw.parse().choices[0].text == "tok0 tok1 "
    assert raw.headers["x-ctxcomp-status"] == "compressed"
    sent = fake.last().body["prompt"]
    assert is_subsequence(sent, prompt)
    # the last paragraph (the question) is protected verbatim
    assert sent.endswith("Question: what is the essay's main claim?")
    # a batch of prompts: each compressed on its own budget
    c.completions.create(model="echo", prompt=[docs[1], "short one"], max_tokens=1)
    batch = fake.last().body["prompt"]
    assert batch[1] == "short one" and len(batch[0]) < len(docs[1])
    assert is_subsequence(batch[0], docs[1])
    # token-id prompts are forwarded as they are
    c.completions.create(model="echo", prompt=[1, 2, 3], max_tokens=1)
    assert fake.last().body["prompt"] == [1, 2, 3]
    c.close()


def test_models_passthrough(proxy: str, fake: FakeUpstream) -> None:
    with client(proxy) as c:
        models = c.models.list()
    assert [m.id for m in models.data] == ["echo"]
    assert fake.last().method == "GET" and fake.last().path == "/v1/models"
