"""Policy: what is compressed, the question, budgets, keep markers, overrides (config and headers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fake_upstream import FakeUpstream
from serve_helpers import KEEP, chat_tokens, is_subsequence, rag_messages

import ctxcomp
from ctxcomp.serve import Policy, ServeConfig
from ctxcomp.serve.policy import header_overrides, resolve
from ctxcomp.serve.shapes import extract


def post(url: str, body: dict, **headers: str) -> httpx.Response:
    h = {"authorization": "Bearer sk-policy", **headers}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=h, timeout=60)


# -- shapes and resolution (no server) ------------------------------------------------


def test_openai_parts_kinds_and_question() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "doc one"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                    {"type": "text", "text": "doc two"},
                    {"type": "text", "text": "the question?"},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "x", "content": "tool out"},
        ],
    }
    [conv] = extract("/v1/chat/completions", body)
    assert [(p.kind, p.text) for p in conv.parts] == [
        ("system", "sys"),
        ("document", "doc one"),
        ("document", "doc two"),
        ("user", "the question?"),
        ("tool", "tool out"),
    ]
    assert conv.question_part is not None and conv.question_part.text == "the question?"
    conv.parts[2].write("DOC 2")
    conv.parts[4].write("TOOL")
    assert body["messages"][1]["content"][2]["text"] == "DOC 2"
    assert body["messages"][3]["content"] == "TOOL"
    assert body["messages"][1]["content"][1]["type"] == "image_url"  # never touched


def test_anthropic_parts() -> None:
    body = {
        "model": "m",
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "data": "d1"}},
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [{"type": "text", "text": "d2"}]},
                    },
                    {"type": "text", "text": "q?"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "t", "signature": "s"}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "r1"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "b",
                        "content": [{"type": "text", "text": "r2"}],
                    },
                ],
            },
        ],
    }
    [conv] = extract("/v1/messages", body)
    assert [(p.kind, p.text) for p in conv.parts] == [
        ("system", "sys"),
        ("document", "d1"),
        ("document", "d2"),
        ("user", "q?"),
        ("tool", "r1"),
        ("tool", "r2"),
    ]
    assert conv.question_part is not None and conv.question_part.text == "q?"
    for p in conv.parts:
        p.write(p.text.upper())
    assert body["messages"][0]["content"][0]["source"]["data"] == "D1"
    assert body["messages"][2]["content"][1]["content"][0]["text"] == "R2"
    assert body["messages"][1]["content"][0]["thinking"] == "t"


def test_unrecognised_shapes_yield_nothing() -> None:
    assert extract("/v1/chat/completions", {"messages": "nope"}) == []
    assert extract("/v1/completions", {"prompt": [[1, 2]]}) == []
    assert extract("/v1/messages", {"model": "m"}) == []


def test_resolution_order_route_model_header() -> None:
    cfg = ServeConfig.from_mapping(
        {
            "ctxcomp": {"reader": "cl100k_base"},
            "serve": {
                "upstream": "http://127.0.0.1:9/v1",
                "policy": {"ratio": 0.5},
                "routes": {"/v1/completions": {"ratio": 0.4, "parts": ["prompt"]}},
                "models": {
                    "gpt-4o*": {"ratio": 0.3, "pipeline": {"reader": "o200k_base"}},
                    "*": {"ratio": 0.9},
                },
            },
        }
    )
    r = resolve(cfg, "/v1/completions", "llama", {})
    assert (r.policy.ratio, r.policy.parts) == (0.9, ("prompt",))  # first matching glob: "*"
    r = resolve(cfg, "/v1/completions", "gpt-4o-mini", {})
    assert r.policy.ratio == 0.3 and r.pipeline["reader"] == "o200k_base"
    r = resolve(cfg, "/v1/chat/completions", "gpt-4o", {"x-ctxcomp-ratio": "0.2"})
    assert r.policy.ratio == 0.2
    off = ServeConfig(upstream="http://h/v1", allow_header_overrides=False)
    assert (
        resolve(off, "/v1/chat/completions", None, {"x-ctxcomp-ratio": "0.2"}).policy.ratio == 0.5
    )


@pytest.mark.parametrize(
    ("headers", "msg"),
    [
        ({"x-ctxcomp-ratio": "lots"}, "not a number"),
        ({"x-ctxcomp-ratio": "1.5"}, "ratio must be in (0, 1]"),
        ({"x-ctxcomp-compress": "maybe"}, "'on' or 'off'"),
        ({"x-ctxcomp-parts": "tool,pictures"}, "unknown"),
        ({"x-ctxcomp-on-error": "retry"}, "on_error"),
        ({"x-ctxcomp-budget": "3"}, "unknown header"),
    ],
)
def test_bad_headers_are_named(headers: dict[str, str], msg: str) -> None:
    with pytest.raises(ctxcomp.InputError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        header_overrides(headers)


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ctxcomp.InputError, match="unknown key"):
        ServeConfig.from_mapping({"serve": {"upstream": "http://h/v1", "upstreem": 1}})
    with pytest.raises(ctxcomp.InputError, match="http"):
        ServeConfig(upstream="h:8000")
    with pytest.raises(ctxcomp.InputError, match="routes"):
        ServeConfig.from_mapping({"serve": {"upstream": "http://h/v1", "routes": {"/v2/x": {}}}})
    with pytest.raises(ctxcomp.InputError, match="unknown pipeline config key"):
        ServeConfig.from_mapping({"ctxcomp": {"modle": "x"}, "serve": {"upstream": "http://h/v1"}})
    with pytest.raises(ctxcomp.InputError, match="NOPE_NOT_SET"):
        ServeConfig(upstream="http://h/v1", upstream_api_key_env="NOPE_NOT_SET")
    with pytest.raises(ctxcomp.InputError, match="parts"):
        Policy(parts=("tools",))
    bad = tmp_path / "c.toml"
    bad.write_text("[serve\nupstream=1")
    with pytest.raises(ctxcomp.InputError, match="not valid toml"):
        ServeConfig.from_file(bad)
    good = tmp_path / "ok.toml"
    good.write_text(
        '[ctxcomp]\nreader = "o200k_base"\n[serve]\nupstream = "http://h:1/v1"\n'
        "[serve.policy]\nmax_prompt_tokens = 900\nratio = 0.6\n"
        '[serve.models."llama*"]\nratio = 0.3\n'
    )
    cfg = ServeConfig.from_file(good, read_timeout=5.0)
    assert cfg.read_timeout == 5.0 and cfg.policy.max_prompt_tokens == 900
    assert cfg.pipeline == {"reader": "o200k_base"} and cfg.models["llama*"].policy == {
        "ratio": 0.3
    }
    assert ServeConfig.from_mapping(cfg.to_mapping()) == cfg
    assert ctxcomp.PipelineConfig.from_file(good).reader == "o200k_base"  # one file, both commands


# -- through the proxy ---------------------------------------------------------------


def test_header_opt_out_forwards_the_exact_bytes(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    body = {"model": "echo", "messages": rag_messages([essays["gh"][:3000]], "What is it about?")}
    r = post(proxy, body, **{"x-ctxcomp-compress": "off"})
    assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "off"
    assert fake.last().raw == r.request.content  # byte for byte


def test_bad_header_is_a_400(proxy: str, fake: FakeUpstream) -> None:
    n = len(fake.seen)
    r = post(
        proxy,
        {"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        **{"x-ctxcomp-ratio": "lots"},
    )
    assert r.status_code == 400
    assert "x-ctxcomp-ratio" in r.json()["error"]["message"]
    assert len(fake.seen) == n  # never forwarded


def test_max_prompt_tokens_budget_holds(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    msgs = rag_messages([essays["todo"][:2500], essays["vb"][:2500]], "What matters most?")
    before = chat_tokens({"messages": msgs})
    for budget in (before + 10, 600, 350):
        r = post(
            proxy,
            {"model": "echo", "messages": msgs},
            **{"x-ctxcomp-max-prompt-tokens": str(budget), "x-ctxcomp-ratio": "none"},
        )
        assert r.status_code == 200
        sent = fake.last().body
        if budget > before:
            assert r.headers["x-ctxcomp-status"] == "skipped"
            assert "within max_prompt_tokens" in r.headers["x-ctxcomp-reason"]
            assert sent["messages"] == msgs
        else:
            assert r.headers["x-ctxcomp-status"] == "compressed"
            assert chat_tokens(sent) == int(r.headers["x-ctxcomp-tokens-after"]) <= budget
            assert sent["messages"][:3] == msgs[:3]  # system, question, tool call: untouched


def test_system_prompt_only_when_asked(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    long_sys = essays["wisdom"][:3000]
    msgs = [{"role": "system", "content": long_sys}, {"role": "user", "content": "Summarise."}]
    post(proxy, {"model": "echo", "messages": msgs})
    assert fake.last().body["messages"][0]["content"] == long_sys  # off by default
    r = post(proxy, {"model": "echo", "messages": msgs}, **{"x-ctxcomp-parts": "system"})
    out = fake.last().body["messages"][0]["content"]
    assert r.headers["x-ctxcomp-status"] == "compressed"
    assert len(out) < len(long_sys) and is_subsequence(out, long_sys)


def test_keep_markers_are_kept_and_removed(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    secret = "The access code is 7731-ALPHA-9 and must survive verbatim."
    tool = essays["diff"][:1500] + f" {KEEP[0]}{secret}{KEEP[1]} " + essays["diff"][1500:3000]
    short_user = f"Question with a marker: {KEEP[0]}keep me{KEEP[1]}"
    msgs = rag_messages([tool], short_user)
    r = post(proxy, {"model": "echo", "messages": msgs}, **{"x-ctxcomp-ratio": "0.2"})
    sent = fake.last().body["messages"]
    assert r.headers["x-ctxcomp-status"] == "compressed"
    assert secret in sent[3]["content"] and len(sent[3]["content"]) < len(tool) / 2
    assert sent[1]["content"] == "Question with a marker: keep me"  # markers never go upstream
    assert "ctxcomp:keep" not in fake.last().raw.decode()
    # compression off: the markers still go
    post(proxy, {"model": "echo", "messages": msgs}, **{"x-ctxcomp-compress": "off"})
    assert "ctxcomp:keep" not in fake.last().raw.decode()


def test_long_user_turn_question_paragraph_protected(
    proxy: str, fake: FakeUpstream, essays: dict[str, str]
) -> None:
    q = "Given all of the above, what does the author recommend?"
    turn = essays["founders"][:4000] + "\n\n" + q
    r = post(proxy, {"model": "echo", "messages": [{"role": "user", "content": turn}]})
    out = fake.last().body["messages"][0]["content"]
    assert r.headers["x-ctxcomp-status"] == "compressed"
    assert out.endswith(q) and len(out) < len(turn) * 0.7 and is_subsequence(out, turn)


def test_route_and_model_overrides(
    start_proxy: Callable[..., str], fake: FakeUpstream, essays: dict[str, str]
) -> None:
    url = start_proxy(
        preload=False,
        compress_in="thread",  # the other mode (the session's proxy uses worker processes)
        pipeline={"coarse": False},  # token-level only: no ranker to load for this test
        routes={"/v1/completions": {"enabled": False}},
        models={"tiny-*": {"ratio": 0.2}},
    )
    doc = essays["island"][:3000]
    msgs = rag_messages([doc], "Where?")
    r1 = post(url, {"model": "echo", "messages": msgs})
    r2 = post(url, {"model": "tiny-1", "messages": msgs})
    t1, t2 = (int(r.headers["x-ctxcomp-tokens-after"]) for r in (r1, r2))
    assert r1.headers["x-ctxcomp-status"] == r2.headers["x-ctxcomp-status"] == "compressed"
    assert t2 < t1
    r3 = httpx.post(url + "/v1/completions", json={"model": "echo", "prompt": doc}, timeout=60)
    assert r3.headers["x-ctxcomp-status"] == "off"
    assert fake.last().body["prompt"] == doc
