"""Fixtures for the batch tests: one local Ray (2 CPUs) per session, a corpus, expectations."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from batch_helpers import RATIO


@pytest.fixture(scope="session")
def ray_cluster() -> Any:
    """A local Ray with 2 CPUs, started once for every test that needs one."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


def _chunks(text: str, size: int) -> list[str]:
    out, cur = [], ""
    for sent in re.split(r"(?<=[.!?])\s+", text):
        cur = f"{cur} {sent}".strip()
        if len(cur) >= size:
            out.append(cur)
            cur = ""
    return out


@pytest.fixture(scope="session")
def corpus(essays: dict[str, str]) -> list[dict[str, Any]]:
    """24 rows of real prose (~400-700 characters), with metadata; a few carry a question."""
    rows = []
    for name in ("avg", "copy", "addiction"):
        for k, text in enumerate(_chunks(essays[name], 400)[:8]):
            rows.append({"id": f"{name}-{k}", "text": text, "source": name, "n": len(rows)})
    for r in rows[1::6]:
        r["q"] = "What does the author say about startups?"
    return rows


@pytest.fixture(scope="session")
def expected(corpus: list[dict[str, Any]]) -> dict[str, Any]:
    """``ctxcomp.compress`` of every corpus row (the embedded default pipeline)."""
    import ctxcomp

    return {r["id"]: ctxcomp.compress(r["text"], ratio=RATIO, question=r.get("q")) for r in corpus}


@pytest.fixture(scope="session")
def expected_plain(corpus: list[dict[str, Any]]) -> dict[str, Any]:
    """The same without the questions (runs that read no question field)."""
    import ctxcomp

    return {r["id"]: ctxcomp.compress(r["text"], ratio=RATIO) for r in corpus}
