"""Faults: upstream errors, timeouts, drops, client disconnects, bad requests, compression
failures, retries that never re-send a POST. Every case ends in a clean answer, never a hang."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from fake_upstream import FakeUpstream
from serve_helpers import KEEP, chat_tokens, rag_messages

MSG = [{"role": "user", "content": "hi"}]


def oa(url: str, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-faults", max_retries=0, timeout=30, **kw)


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# -- the upstream fails ---------------------------------------------------------------


def test_upstream_500_and_429_pass_through(proxy: str) -> None:
    with oa(proxy) as c:
        with pytest.raises(openai.InternalServerError) as e500:
            c.chat.completions.create(model="error-500", messages=MSG)
        assert e500.value.status_code == 500 and "upstream exploded" in e500.value.message
        with pytest.raises(openai.RateLimitError) as e429:
            c.chat.completions.create(model="error-429", messages=MSG)
    assert e429.value.response.headers["retry-after"] == "7"
    assert e429.value.body == {"message": "slow down", "type": "rate_limit"}
    assert e429.value.response.headers["x-ctxcomp-status"] == "skipped"


def test_upstream_timeout_is_a_504_and_the_upstream_call_is_closed(
    start_proxy: Callable[..., str], fake: FakeUpstream
) -> None:
    url = start_proxy(preload=False, read_timeout=0.5)
    t0 = time.monotonic()
    with oa(url) as c, pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="hang", messages=MSG)
    assert exc.value.status_code == 504 and time.monotonic() - t0 < 10
    assert exc.value.body["code"] == "read_timeout"  # type: ignore[index]
    assert wait_for(lambda: fake.last().disconnected_at is not None)


def test_upstream_unreachable_is_a_502_after_safe_retries(start_proxy: Callable[..., str]) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = start_proxy(
        preload=False, upstream=f"http://127.0.0.1:{port}/v1", retries=2, retry_backoff=0.01
    )
    r = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": MSG}, timeout=30)
    assert r.status_code == 502 and r.json()["error"]["code"] == "connect"
    assert metric(url, "ctxcomp_proxy_upstream_retries_total") == 2


def test_upstream_drop_mid_stream_is_a_clean_error(proxy: str, fake: FakeUpstream) -> None:
    got: list[str] = []
    t0 = time.monotonic()
    with oa(proxy) as c, pytest.raises(openai.APIError) as exc:
        for chunk in c.chat.completions.create(model="drop", messages=MSG, stream=True):
            got.append(chunk.choices[0].delta.content or "")
    assert got == ["tok0 ", "tok1 ", "tok2 "]  # what came before the drop, intact
    assert "closed the connection" in exc.value.message
    assert time.monotonic() - t0 < 10
    # a non-streaming body cut short: a 502, not a truncated 200
    r = httpx.post(
        proxy + "/v1/chat/completions", json={"model": "drop-json", "messages": MSG}, timeout=30
    )
    assert r.status_code == 502 and r.json()["error"]["code"] == "disconnected"


def test_anthropic_stream_drop_is_a_clean_error(proxy: str) -> None:
    anthropic = pytest.importorskip("anthropic")
    c = anthropic.Anthropic(base_url=proxy, api_key="sk-faults", max_retries=0)
    with c, pytest.raises(anthropic.APIStatusError) as exc:
        for _ in c.messages.create(model="drop", max_tokens=5, messages=MSG, stream=True):
            pass
    assert "closed the connection" in str(exc.value)


# -- the client goes ------------------------------------------------------------------


def test_client_disconnect_mid_stream_cancels_the_upstream(proxy: str, fake: FakeUpstream) -> None:
    before = metric(proxy, "ctxcomp_proxy_client_disconnects_total")
    with oa(proxy) as c:
        stream = c.chat.completions.create(model="slow-stream", messages=MSG, stream=True)
        for i, _ in enumerate(stream):
            if i == 2:
                break
        stream.close()  # the client hangs up
    seen = fake.last()
    assert wait_for(lambda: seen.disconnected_at is not None), "upstream never saw the disconnect"
    assert not seen.finished and seen.chunks_sent < 100  # of 400, 25 ms apart
    assert wait_for(lambda: metric(proxy, "ctxcomp_proxy_client_disconnects_total") == before + 1)


def test_client_gone_before_the_upstream_answers(proxy: str, fake: FakeUpstream) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            proxy + "/v1/chat/completions", json={"model": "hang", "messages": MSG}, timeout=1.0
        )
    assert wait_for(lambda: fake.last().disconnected_at is not None)


# -- bad requests ---------------------------------------------------------------------


def test_bad_requests_get_clear_4xx(
    start_proxy: Callable[..., str], proxy: str, fake: FakeUpstream
) -> None:
    n = len(fake.seen)
    post = proxy + "/v1/chat/completions"
    r = httpx.post(post, content=b'{"model": "x", ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(post, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]
    r = httpx.post(
        post, content=b"model=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    r = httpx.post(proxy + "/v1/embeddings", json={"input": "x"})
    assert r.status_code == 404 and "/v1/chat/completions" in r.json()["error"]["message"]
    r = httpx.get(post)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
    with oa(proxy) as c, pytest.raises(openai.BadRequestError) as bad:
        c.post("/chat/completions", content=b"{oops", cast_to=object)
    assert "not valid JSON" in bad.value.message
    assert len(fake.seen) == n  # none of these reached the upstream

    small = start_proxy(preload=False, max_body_bytes=2000)
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 5000}]}
    r = httpx.post(small + "/v1/chat/completions", json=big)
    assert r.status_code == 413 and "2000 bytes" in r.json()["error"]["message"]

    def chunks():  # no content-length: the limit holds while reading
        yield b'{"model": "echo", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    r = httpx.post(
        small + "/v1/chat/completions",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert len(fake.seen) == n


# -- compression fails ------------------------------------------------------------------


def test_compression_failure_pass_or_fail(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    protected = f"{KEEP[0]}{essays['vw'][:2000]}{KEEP[1]}"
    msgs = rag_messages([essays["vw"][2000:4000] + protected], "What about VW?")
    h = {"authorization": "Bearer sk-faults", "x-ctxcomp-max-prompt-tokens": "300"}
    # the default degrades: the protected span is dropped whole and the request compressed
    r = httpx.post(
        proxy + "/v1/chat/completions", json={"model": "echo", "messages": msgs}, headers=h
    )
    assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "compressed"
    assert chat_tokens(fake.last().body) <= 300
    # a model with strict budgets (on_overflow="error") fails to compress the same request
    body = {"model": "strict-test", "messages": msgs}
    # pass (the default): the upstream gets the request uncompressed, and the client is told
    r = httpx.post(proxy + "/v1/chat/completions", json=body, headers=h, timeout=60)
    assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "error"
    assert r.headers["x-ctxcomp-reason"].startswith("BudgetError")
    sent = fake.last().body["messages"][3]["content"]
    assert sent == msgs[3]["content"].replace(KEEP[0], "").replace(KEEP[1], "")
    # fail: a 422 naming the problem, and the upstream is never called
    n = len(fake.seen)
    r = httpx.post(
        proxy + "/v1/chat/completions",
        json=body,
        headers={**h, "x-ctxcomp-on-error": "fail"},
        timeout=60,
    )
    assert r.status_code == 422 and r.json()["error"]["type"] == "compression_error"
    assert "protected" in r.json()["error"]["message"]
    # the parts that cannot be compressed alone exceed the budget
    h2 = {**h, "x-ctxcomp-max-prompt-tokens": "5", "x-ctxcomp-on-error": "fail"}
    r = httpx.post(proxy + "/v1/chat/completions", json=body, headers=h2, timeout=60)
    assert r.status_code == 422 and re.search(r"hold \d+ tokens", r.json()["error"]["message"])
    assert len(fake.seen) == n


def test_compression_timeout_passes_the_request_on(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    # the session proxy gives model "timeout-test" a 1 ms compress_timeout
    body = {"model": "timeout-test", "messages": rag_messages([essays["bias"][:3000]], "Why?")}
    r = httpx.post(
        proxy + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-t"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "error"
    assert r.headers["x-ctxcomp-reason"].startswith(
        "CompressTimeout: compression took over 0.001 s"
    )
    assert fake.last().body["messages"] == body["messages"]


# -- compression never blocks the event loop ------------------------------------------------


def test_long_compression_does_not_stall_other_streams(proxy: str, essays: dict[str, str]) -> None:
    fresh = " ".join(essays[k] for k in ("love", "mod", "nft"))[:14000] + f" {time.time()}"
    result: dict[str, httpx.Response] = {}

    def compress() -> None:
        result["r"] = httpx.post(
            proxy + "/v1/chat/completions",
            json={"model": "echo", "messages": rag_messages([fresh], "What?")},
            headers={"authorization": "Bearer sk-loop", "x-ctxcomp-ratio": "0.3"},
            timeout=120,
        )

    t = threading.Thread(target=compress)
    arrivals: list[float] = []
    quick: list[float] = []
    with oa(proxy) as c:
        stream = c.chat.completions.create(
            model="echo", messages=MSG, stream=True, max_tokens=150, metadata={"gap": "0.02"}
        )
        for i, _ in enumerate(stream):
            arrivals.append(time.monotonic())
            if i == 5:
                t.start()
            if i in (40, 80):  # a request with nothing to compress, meanwhile
                t0 = time.monotonic()
                httpx.post(
                    proxy + "/v1/chat/completions",
                    json={"model": "echo", "messages": MSG},
                    timeout=30,
                )
                quick.append(time.monotonic() - t0)
    t.join()
    r = result["r"]
    assert r.headers["x-ctxcomp-status"] == "compressed"
    busy = float(r.headers["x-ctxcomp-compression-ms"]) / 1000
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    # the compression took long (had it run on the event loop, one gap would be as long),
    # and the stream kept flowing meanwhile; relative to the compression's own time, so a
    # loaded machine slows both sides alike
    assert busy > 0.5 and max(gaps) < 0.9 * busy
    assert max(quick) < 0.9 * busy


# -- retries: never re-send a POST whose bytes may have left --------------------------------


class _Slammer:
    """A TCP server that reads a request and closes the connection without answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.recv(65536):
                    self.requests += 1


def test_post_is_never_retried_after_sending_get_is(start_proxy: Callable[..., str]) -> None:
    slam = _Slammer()
    url = start_proxy(
        preload=False, upstream=f"http://127.0.0.1:{slam.port}/v1", retries=2, retry_backoff=0.01
    )
    r = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": MSG}, timeout=30)
    assert r.status_code == 502 and r.json()["error"]["code"] == "disconnected"
    assert slam.requests == 1
    r = httpx.get(url + "/v1/models", timeout=30)
    assert r.status_code == 502
    assert wait_for(lambda: slam.requests == 1 + 3)  # a GET: first try + 2 retries
    slam.sock.close()


# -- a compression worker dies ------------------------------------------------------------


def test_dead_worker_is_replaced(proxy: str, fake: FakeUpstream, essays: dict[str, str]) -> None:
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    workers = [p for p in me.children(recursive=True) if "multiprocessing" in " ".join(p.cmdline())]
    workers = [p for p in workers if "spawn_main" in " ".join(p.cmdline())]
    assert workers, "the session proxy compresses in a worker process"
    body = {"model": "echo", "messages": rag_messages([essays["web20"][:3000]], "What is Web 2.0?")}
    h = {"authorization": "Bearer sk-faults"}
    for p in workers:
        p.kill()
    for p in workers:
        p.wait(10)
    r = httpx.post(proxy + "/v1/chat/completions", json=body, headers=h, timeout=120)
    assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "error"  # sent uncompressed
    assert "Broken" in r.headers["x-ctxcomp-reason"]
    assert fake.last().body["messages"][3]["content"] == body["messages"][3]["content"]
    deadline = time.monotonic() + 300
    while True:  # a new worker takes over once it has loaded the model
        r = httpx.post(proxy + "/v1/chat/completions", json=body, headers=h, timeout=300)
        if r.headers["x-ctxcomp-status"] == "compressed" or time.monotonic() > deadline:
            break
        assert r.headers["x-ctxcomp-reason"].startswith("CompressTimeout")  # still loading
        time.sleep(1)
    assert r.headers["x-ctxcomp-status"] == "compressed"
