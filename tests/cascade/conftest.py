"""Fixtures for the C3 tests: a tiny Qwen-style tokenizer (converted from tiktoken) and
tiny random Qwen2 / Llama encoders and decoders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from cascade_helpers import tiny_lm, write_tiktoken


@pytest.fixture(scope="session")
def tiktoken_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("c3tok") / "qwen.tiktoken"
    write_tiktoken(p)
    return p


@pytest.fixture(scope="session")
def tiny_tok(tiktoken_file: Path) -> Any:
    from ctxcomp.latent.cascade.tokenizer import qwen_tiktoken_tokenizer

    return qwen_tiktoken_tokenizer(tiktoken_file)


@pytest.fixture()
def tiny_c3(tiny_tok: Any) -> Any:
    """A fresh C3 model: Qwen2 encoder (d=32) -> Qwen2 decoder (d=48), 4 latents."""
    from ctxcomp.latent.cascade.layout import build
    from ctxcomp.latent.cascade.template import C3

    return build(
        tiny_lm("qwen2", 32, seed=1),
        tiny_lm("qwen2", 48, seed=2),
        tiny_tok,
        num_latents=4,
        template=C3,
        chunk_tokens=16,
    )
