"""Tenancy: API key -> cache namespace (a hash), keys never logged, upstream key modes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from fake_upstream import FakeUpstream
from serve_helpers import rag_messages

from ctxcomp.cache import SQLiteStore


def chat(
    url: str, key: str | None, body: dict, path: str = "/v1/chat/completions", **h: str
) -> httpx.Response:
    headers = dict(h)
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(url + path, json=body, headers=headers, timeout=60)


def ns_of(key: str) -> str:
    return "t-" + hashlib.sha256(b"\0" + key.encode()).hexdigest()[:32]


def test_each_key_gets_its_own_cache_namespace(
    proxy: str, fake: FakeUpstream, cache_file: Path, essays: dict[str, str]
) -> None:
    keys = ["sk-tenant-one-8f2a", "sk-tenant-two-93c1"]
    body = {"model": "echo", "messages": rag_messages([essays["pow"][:3000]], "What is power?")}
    outs = []
    for k in keys:
        r = chat(proxy, k, body)
        assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "compressed"
        assert r.headers["x-ctxcomp-tenant"] == ns_of(k)
        outs.append(fake.last().body)
    assert outs[0] == outs[1]  # same text, same compression; separate cache entries
    store = SQLiteStore(cache_file)
    try:
        spaces = store.namespaces()
    finally:
        store.close()
    assert {ns_of(k) for k in keys} <= set(spaces)
    raw = cache_file.read_bytes()
    assert not any(k.encode() in raw for k in keys)  # neither key is stored


def test_keys_are_never_logged(
    proxy: str, fake: FakeUpstream, caplog: pytest.LogCaptureFixture, essays: dict[str, str]
) -> None:
    key = "sk-never-log-me-5d41402abc4b2a76"
    caplog.set_level(logging.DEBUG)
    body = {"model": "echo", "messages": rag_messages([essays["sun"][:2000]], "Why?")}
    chat(proxy, key, body)
    chat(proxy, key, {**body, "model": "error-500"})
    chat(proxy, key, body, **{"x-ctxcomp-ratio": "bad"})
    httpx.post(
        proxy + "/v1/chat/completions",
        content=b"{oops",
        timeout=30,
        headers={"content-type": "application/json", "x-api-key": key},
    )
    httpx.get(
        proxy + "/v1/models?api-key=" + key, headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    metrics = httpx.get(proxy + "/metrics", timeout=30).text
    # what the servers' threads logged (the test's own client logs from the main thread)
    text = "\n".join(r.getMessage() for r in caplog.records if r.threadName != "MainThread")
    assert "ctxcomp=" in text  # the proxy did log these requests
    assert key not in text and key not in metrics
    assert key[3:] not in text


def test_configured_upstream_key_replaces_the_clients(
    start_proxy: Callable[..., str], fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTXCOMP_TEST_UPSTREAM_KEY", "sk-upstream-own")
    url = start_proxy(preload=False, upstream_api_key_env="CTXCOMP_TEST_UPSTREAM_KEY")
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    r = chat(
        url, "sk-client-xyz", body, **{"x-api-key": "sk-client-xyz", "api-key": "sk-client-xyz"}
    )
    assert r.status_code == 200
    h = fake.last().headers
    assert h["authorization"] == "Bearer sk-upstream-own"
    assert "x-api-key" not in h and "api-key" not in h
    assert "sk-client-xyz" not in str(h)
    # the Anthropic route takes the key in x-api-key
    r = chat(url, "sk-client-xyz", body, path="/v1/messages")
    h = fake.last().headers
    assert r.status_code == 200
    assert h["x-api-key"] == "sk-upstream-own" and "authorization" not in h


def test_client_allow_list(
    start_proxy: Callable[..., str], fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTXCOMP_TEST_CLIENT_KEYS", "sk-good-1, sk-good-2")
    url = start_proxy(preload=False, client_keys_env="CTXCOMP_TEST_CLIENT_KEYS")
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    n = len(fake.seen)
    for key in ("sk-bad", None):
        r = chat(url, key, body)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="sk-bad", max_retries=0).models.list()
    assert len(fake.seen) == n
    assert chat(url, "sk-good-2", body).status_code == 200
