"""OpenAI-compatible reader against a real loopback HTTP server; HF reader on a tiny model."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evals.longbench.readers import OpenAIReader, ReaderError, make_reader

pytest.importorskip("httpx")


class _Server:
    """Scripted responses: a list of (status, content or None, delay seconds)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                outer.requests.append(
                    (self.path, self.headers.get("Authorization"), json.loads(self.rfile.read(n)))
                )
                status, content, delay = outer.script.pop(0) if outer.script else (200, "ok", 0)
                if delay:
                    time.sleep(delay)
                body = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": content}}]}
                ).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def test_reader_ok_and_key_from_env(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    with _Server([(200, "Paris", 0)]) as s:
        r = OpenAIReader("m1", s.url, api_key_env="MY_KEY", retries=0)
        out = r.generate("Context... Question: capital?\nAnswer:", "hotpotqa")
    assert out.text == "Paris"
    path, auth, body = s.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "m1" and body["temperature"] == 0 and body["max_tokens"] == 32
    assert body["messages"][0]["content"].endswith("Answer:")


def test_reader_retries_on_500():
    with _Server([(500, None, 0), (503, None, 0), (200, "42", 0)]) as s:
        out = OpenAIReader("m", s.url, retries=3, backoff=0.01).generate("p", "passage_count")
    assert out.text == "42" and len(s.requests) == 3


def test_reader_gives_up_after_retries():
    with (
        _Server([(500, None, 0)] * 3) as s,
        pytest.raises(ReaderError, match="after 3 attempts: HTTP 500"),
    ):
        OpenAIReader("m", s.url, retries=2, backoff=0.01).generate("p", "hotpotqa")


def test_reader_timeout_then_success():
    with _Server([(200, "late", 1.0), (200, "fast", 0)]) as s:
        out = OpenAIReader("m", s.url, retries=1, timeout=0.3, backoff=0.01).generate(
            "p", "hotpotqa"
        )
    assert out.text == "fast"


def test_reader_timeout_exhausted():
    with _Server([(200, "late", 1.0)] * 2) as s, pytest.raises(ReaderError, match="timed out"):
        OpenAIReader("m", s.url, retries=1, timeout=0.2, backoff=0.01).generate("p", "hotpotqa")


def test_reader_unreachable_endpoint():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    r = OpenAIReader("m", f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(ReaderError, match="cannot reach"):
        r.generate("p", "hotpotqa")


def test_reader_empty_answer_and_client_error():
    with _Server([(200, None, 0), (400, None, 0)]) as s:
        r = OpenAIReader("m", s.url, retries=0)
        assert r.generate("p", "hotpotqa").text == ""
        with pytest.raises(ReaderError, match="HTTP 400"):
            r.generate("p", "hotpotqa")


def test_reader_middle_truncates_prompt():
    with _Server([(200, "x", 0)]) as s:
        r = OpenAIReader("m", s.url, retries=0, max_length=64)
        r.generate("word " * 500, "hotpotqa")  # window 64 - 32 generated = 32 prompt tokens
    from evals.longbench.tokens import get_tokenizer

    assert get_tokenizer("cl100k_base").count(s.requests[0][2]["messages"][0]["content"]) <= 34


def test_make_reader_specs():
    assert make_reader("none") is None
    with pytest.raises(ValueError):
        make_reader("openai:nourl")
    r = make_reader("openai:gpt@http://127.0.0.1:9/v1", timeout=5, retries=0)
    assert isinstance(r, OpenAIReader) and r.model == "gpt" and r.retries == 0


def test_hf_reader_tiny_model(tiny_lm_dir):
    r = make_reader(f"hf:{tiny_lm_dir}")
    out1 = r.generate("Passage about cats. Question: what? Answer:", "hotpotqa")
    out2 = r.generate("Passage about cats. Question: what? Answer:", "hotpotqa")
    assert out1.text == out2.text  # greedy
    ids = r.build_input("word " * 2000, "trec")  # middle-truncated to the window minus 64
    assert len(ids) <= r.window - 64 + 2
