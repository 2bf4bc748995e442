"""The `ctxcomp serve` command, /healthz and /metrics, and the import guarantees."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fake_upstream import FakeUpstream
from typer.testing import CliRunner

import ctxcomp
from ctxcomp.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_import_ctxcomp_stays_light() -> None:
    code = (
        "import sys, ctxcomp; "
        "bad = [m for m in ('starlette', 'uvicorn', 'httpx', 'prometheus_client', 'ctxcomp.serve') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_names_the_install_command() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from ctxcomp.serve import ServeConfig, create_app\n"
        "try:\n    create_app(ServeConfig(upstream='http://h/v1'))\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError")
    assert "pip install 'ctxcomp[serve]'" in out.stdout


def test_cli_check_prints_the_resolved_config(tmp_path: Path) -> None:
    cfg = tmp_path / "ctxcomp.toml"
    cfg.write_text(
        '[ctxcomp]\nreader = "o200k_base"\n'
        '[serve]\nupstream = "http://127.0.0.1:9/v1"\n[serve.policy]\nratio = 0.4\n'
    )
    r = CliRunner().invoke(
        app, ["serve", "--config", str(cfg), "--max-prompt-tokens", "800", "--check"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ctxcomp"]["reader"] == "o200k_base"
    # --max-prompt-tokens without --ratio: compress only what exceeds the budget
    assert data["serve"]["policy"]["ratio"] is None
    assert data["serve"]["policy"]["max_prompt_tokens"] == 800
    r = CliRunner().invoke(app, ["serve", "--config", str(cfg), "--check"])
    assert json.loads(r.stdout)["serve"]["policy"]["ratio"] == 0.4
    r = CliRunner().invoke(app, ["serve", "--check"])
    assert r.exit_code == 2 and "no upstream" in r.output
    r = CliRunner().invoke(app, ["serve", "--upstream", "localhost:8000", "--check"])
    assert r.exit_code == 2 and "http(s)://" in r.output


def test_healthz_and_metrics(proxy: str) -> None:
    h = httpx.get(proxy + "/healthz", timeout=10)
    assert h.status_code == 200 and h.json() == {"status": "ok", "version": ctxcomp.__version__}
    httpx.post(
        proxy + "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    m = httpx.get(proxy + "/metrics", timeout=10)
    assert m.headers["content-type"].startswith("text/plain")
    text = m.text
    for name in (
        'ctxcomp_proxy_requests_total{route="/v1/chat/completions",status="200"}',
        "ctxcomp_proxy_request_seconds_bucket",
        "ctxcomp_proxy_upstream_response_seconds_bucket",
        'ctxcomp_proxy_compressions_total{outcome="skipped"}',
        "ctxcomp_proxy_inflight_requests",
        "ctxcomp_proxy_pipelines_loaded 1.0",
    ):
        assert name in text, name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_cli_serves_with_two_workers(fake: FakeUpstream, tmp_path: Path) -> None:
    """`ctxcomp serve --workers 2` as a subprocess: both workers answer, then it stops."""
    port = _free_port()
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "ctxcomp": {"cache": str(tmp_path / "c.sqlite")},
                "serve": {"upstream": fake.url + "/v1", "preload": False},
            }
        )
    )  # type: ignore[attr-defined]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctxcomp",
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        for _ in range(6):
            r = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert r.status_code == 200 and r.headers["x-ctxcomp-status"] == "skipped"
        metrics = httpx.get(url + "/metrics", timeout=10).text
        line = next(
            x
            for x in metrics.splitlines()
            if x.startswith("ctxcomp_proxy_requests_total{") and 'status="200"' in x
        )
        assert float(line.rsplit(" ", 1)[1]) == 6  # summed over both workers
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_compression_workers_exit_with_the_server(tmp_path: Path) -> None:
    """A worker holds a model: when the server process dies (even by SIGKILL), so does it."""
    psutil = pytest.importorskip("psutil")
    code = (
        "import time\n"
        "from ctxcomp.serve.worker import Workers\n"
        "w = Workers('process', 1, 1)\n"
        "print(w.executor.submit(__import__('os').getpid).result(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = psutil.Process(int(parent.stdout.readline()))
        assert worker.is_running()
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
    try:
        worker.wait(10)  # raises psutil.TimeoutExpired if it outlives its server
    finally:
        if worker.is_running():
            worker.kill()
