"""Fixtures for the cache tests: a real redis-server on loopback, cached compressors."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from cache_test_helpers import free_port


@pytest.fixture(scope="session")
def redis_url(redis_server: tuple[str, str]) -> str:
    """redis://127.0.0.1:<port>/0 of the session's redis-server."""
    return redis_server[0]


@pytest.fixture(scope="session")
def redis_unix_url(redis_server: tuple[str, str]) -> str:
    """unix://<socket>?db=0 of the session's redis-server."""
    return f"unix://{redis_server[1]}?db=0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A redis-server started for this session on a free loopback port and a unix socket
    (skip if absent): (URL, socket path)."""
    required = bool(os.environ.get("CTXCOMP_REQUIRE_SYSTEM_TOOLS"))  # CI: fail, never skip
    exe = shutil.which("redis-server")
    if exe is None:
        if required:
            pytest.fail(
                "redis-server is required here (CTXCOMP_REQUIRE_SYSTEM_TOOLS) but not installed"
            )
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    if importlib.util.find_spec("redis") is None:
        if required:
            pytest.fail(
                "the redis client is required here but not installed: pip install 'ctxcomp[redis]'"
            )
        pytest.skip("the redis client is not installed: pip install 'ctxcomp[redis]'")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
            "--protected-mode",
            "yes",
            "--unixsocket",
            str(d / "redis.sock"),
            "--unixsocketperm",
            "700",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                (pytest.fail if required else pytest.skip)("redis-server did not start")
            time.sleep(0.05)
    client.close()
    yield url, str(d / "redis.sock")
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
