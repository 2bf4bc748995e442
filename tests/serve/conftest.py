"""Real servers on loopback: the fake upstream, and proxies built from configs.

One fake upstream and one default proxy serve the whole session (the proxy loads the
embedded default compressor once); tests that need another config start their own proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

from fake_upstream import FakeUpstream, LoopbackServer

from ctxcomp.serve import ServeConfig, create_app

DEFAULT_POLICY = {"ratio": 0.5, "min_part_tokens": 32, "long_user_tokens": 300}


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    app = FakeUpstream()
    with LoopbackServer(app) as srv:
        app.url = srv.url  # type: ignore[attr-defined]
        yield app


@pytest.fixture(scope="session")
def cache_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-cache") / "segments.sqlite"


def make_config(fake: FakeUpstream, cache: Path | None, **serve: Any) -> ServeConfig:
    policy = {**DEFAULT_POLICY, **serve.pop("policy", {})}
    pipeline = {"cache": str(cache) if cache else False, **serve.pop("pipeline", {})}
    return ServeConfig.from_mapping(
        {
            "ctxcomp": pipeline,
            "serve": {"upstream": fake.url + "/v1", "policy": policy, **serve},  # type: ignore[attr-defined]
        }
    )


@contextmanager
def running_proxy(config: ServeConfig) -> Iterator[str]:
    with LoopbackServer(create_app(config)) as srv:
        yield srv.url


@pytest.fixture(scope="session")
def proxy(fake: FakeUpstream, cache_file: Path) -> Iterator[str]:
    """The default proxy's base URL (ratio 0.5, SQLite cache, clients' keys pass through)."""
    models = {
        "timeout-test": {"compress_timeout": 0.001},
        # strict budgets: protected text over the budget raises instead of degrading
        "strict-test": {"pipeline": {"extra": {"on_overflow": "error"}}},
    }
    cfg = make_config(fake, cache_file, models=models)
    with running_proxy(cfg) as url:
        yield url


@pytest.fixture
def start_proxy(fake: FakeUpstream, cache_file: Path) -> Iterator[Callable[..., str]]:
    """Start a proxy with other settings (stopped at the end of the test)."""
    stack: list[Any] = []

    def start(**serve: Any) -> str:
        cm = running_proxy(make_config(fake, serve.pop("cache", cache_file), **serve))
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
