"""``ctxcomp cache stats|clear``."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ctxcomp.cache import Artifact, SegmentCache, SQLiteStore
from ctxcomp.cli_cache import cache_app

runner = CliRunner()


def _fill(path) -> None:
    cache = SegmentCache(SQLiteStore(path))
    art = Artifact("tc.window", {"ids": np.arange(100, dtype="<i4"), "p": np.ones(100, np.float32)})
    cache.put("t1", "tc.window", {"a": art, "b": art})
    cache.put("t2", "tc.window", {"a": art})
    cache.get("t1", "tc.window", ["a", "zz"])
    cache.close()


def test_stats_text_and_json(tmp_path) -> None:
    p = tmp_path / "c.sqlite"
    _fill(p)
    r = runner.invoke(cache_app, ["stats", "--path", str(p)])
    assert r.exit_code == 0, r.output
    assert "entries: 3" in r.output and "hits: 1" in r.output and "hit rate: 50.0%" in r.output
    assert "namespace t1: 2 entries" in r.output
    r = runner.invoke(cache_app, ["stats", "--path", str(p), "--json", "-n", "t2"])
    info = json.loads(r.stdout)
    assert info["entries"] == 3 and list(info["namespaces"]) == ["t2"] and info["hit_rate"] == 0.5


def test_clear_namespace_then_all(tmp_path) -> None:
    p = tmp_path / "c.sqlite"
    _fill(p)
    r = runner.invoke(cache_app, ["clear", "--path", str(p), "-n", "t1", "--yes"])
    assert r.exit_code == 0 and "removed 2 entries" in r.output
    assert SQLiteStore(p).info()["namespaces"] == {
        "t2": {"entries": 1, "bytes": SQLiteStore(p).info()["bytes"]}
    }
    r = runner.invoke(cache_app, ["clear", "--path", str(p)], input="n\n")
    assert r.exit_code == 1 and SQLiteStore(p).info()["entries"] == 1  # refused at the prompt
    r = runner.invoke(cache_app, ["clear", "--path", str(p), "-y"])
    assert r.exit_code == 0 and SQLiteStore(p).info()["entries"] == 0


def test_missing_file_and_bad_arguments(tmp_path) -> None:
    r = runner.invoke(cache_app, ["stats", "--path", str(tmp_path / "none.sqlite")])
    assert r.exit_code == 0 and "no file yet" in r.output
    assert not (tmp_path / "none.sqlite").exists()  # stats never creates a cache
    r = runner.invoke(
        cache_app, ["clear", "--path", str(tmp_path / "c.sqlite"), "-n", "bad name", "-y"]
    )
    assert r.exit_code == 0 or r.exit_code == 2
    _fill(tmp_path / "c.sqlite")
    r = runner.invoke(
        cache_app, ["clear", "--path", str(tmp_path / "c.sqlite"), "-n", "bad name", "-y"]
    )
    assert r.exit_code == 2 and "namespace" in r.output


def test_redis_stats_and_unreachable(redis_url) -> None:
    from ctxcomp.cache import RedisStore

    RedisStore(redis_url).put_many("cli", "k", {"a": b"12345"})
    r = runner.invoke(cache_app, ["stats", "--redis", redis_url, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["namespaces"]["cli"]["entries"] >= 1
    r = runner.invoke(cache_app, ["clear", "--redis", redis_url, "-n", "cli", "-y"])
    assert r.exit_code == 0 and "removed 1 entries" in r.output
    from cache_test_helpers import free_port

    r = runner.invoke(cache_app, ["clear", "--redis", f"redis://127.0.0.1:{free_port()}/0", "-y"])
    assert r.exit_code == 2 and "unreachable" in r.output
