"""Fixtures: tiny random-weight LMs and a tiny tokenizer (see latent_helpers)."""

from __future__ import annotations

from typing import Any

import pytest
from latent_helpers import make_lm, make_tokenizer

ARCHS = ("llama", "qwen2", "gemma3")


@pytest.fixture(scope="session")
def tok() -> Any:
    return make_tokenizer()


@pytest.fixture(scope="session", params=ARCHS)
def lm(request: pytest.FixtureRequest, tok: Any) -> Any:
    return make_lm(request.param, len(tok))


@pytest.fixture(scope="session")
def llama(tok: Any) -> Any:
    return make_lm("llama", len(tok))
