"""The store contract, run against memory, SQLite and a real redis-server."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ctxcomp.cache import Artifact, Eviction, MemoryStore, SegmentCache, SQLiteStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "c.sqlite")
    else:
        from ctxcomp.cache import RedisStore

        url = request.getfixturevalue("redis_url")
        s = RedisStore(url, prefix=f"t{time.monotonic_ns()}")
    yield s
    s.clear()
    s.close()


def test_put_get_delete(store) -> None:
    store.put_many("ns", "k", {"a": b"1", "b": b"22"})
    assert store.get_many("ns", "k", ["a", "b", "c"]) == {"a": b"1", "b": b"22"}
    store.put_many("ns", "k", {"a": b"333"})  # overwrite
    assert store.get_many("ns", "k", ["a"]) == {"a": b"333"}
    store.delete("ns", "k", ["a"])
    assert store.get_many("ns", "k", ["a", "b"]) == {"b": b"22"}
    assert sorted(store.iter_kind("ns", "k")) == [("b", b"22")]


def test_namespaces_and_kinds_are_isolated(store) -> None:
    store.put_many("t1", "k", {"x": b"one"})
    store.put_many("t2", "k", {"x": b"two"})
    store.put_many("t1", "other", {"x": b"three"})
    assert store.get_many("t1", "k", ["x"]) == {"x": b"one"}
    assert store.get_many("t2", "k", ["x"]) == {"x": b"two"}
    assert store.get_many("t3", "k", ["x"]) == {}
    assert set(store.namespaces()) >= {"t1", "t2"}
    assert store.clear("t1") == 2
    assert store.get_many("t1", "k", ["x"]) == {} and store.get_many("t2", "k", ["x"]) == {
        "x": b"two"
    }


def test_info_and_counters(store) -> None:
    store.put_many("ns", "k", {"a": b"x" * 100, "b": b"y" * 50})
    store.add_counters({"hits": 3, "misses": 1})
    store.add_counters({"hits": 2})
    info = store.info()
    assert info["entries"] == 2 and info["bytes"] == 150
    assert info["namespaces"]["ns"] == {"entries": 2, "bytes": 150}
    assert info["counters"]["hits"] == 5 and info["counters"]["misses"] == 1


def test_many_keys_in_one_call(store) -> None:
    items = {f"k{i}": bytes([i % 256]) * 10 for i in range(1500)}
    store.put_many("ns", "k", items)
    assert store.get_many("ns", "k", list(items)) == items


def test_segment_cache_stats_and_verification(store) -> None:
    cache = SegmentCache(store)
    art = Artifact("tc.window", {"ids": np.arange(4, dtype="<i4"), "p": np.ones(4, np.float32)})
    cache.put("ns", "tc.window", {"a": art})
    store.put_many("ns", "tc.window", {"bad": art.encode()[:-3]})  # a torn value
    got = cache.get("ns", "tc.window", ["a", "bad", "missing"])
    assert list(got) == ["a"]
    s = cache.stats
    assert (s.hits, s.misses, s.corrupt, s.puts) == (1, 2, 1, 1)
    assert store.get_many("ns", "tc.window", ["bad"]) == {}  # the torn value was removed
    info = cache.info()
    assert info["counters"]["hits"] == 1 and info["counters"]["corrupt"] == 1
    assert info["session"]["hit_rate"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_lru_eviction_by_size(kind: str, tmp_path) -> None:
    ev = Eviction(max_bytes=10_000)
    s = MemoryStore(ev) if kind == "memory" else SQLiteStore(tmp_path / "e.sqlite", eviction=ev)
    s.put_many("ns", "k", {f"old{i}": b"o" * 1000 for i in range(5)})
    s.put_many("ns", "k", {f"new{i}": b"n" * 1000 for i in range(8)})
    info = s.info()
    assert info["bytes"] <= 10_000
    got = s.get_many("ns", "k", [f"new{i}" for i in range(8)])
    assert len(got) == 8  # the newest survive; the least recently used went first
    assert len(s.get_many("ns", "k", [f"old{i}" for i in range(5)])) < 5


def test_sqlite_entry_limit_and_ttl(tmp_path) -> None:
    s = SQLiteStore(tmp_path / "t.sqlite", eviction=Eviction(max_entries=20, ttl_seconds=0.2))
    s.put_many("ns", "k", {f"a{i}": b"x" for i in range(30)})
    assert s.info()["entries"] <= 20
    time.sleep(0.3)
    assert s.get_many("ns", "k", [f"a{i}" for i in range(30)]) == {}  # expired: never served
    s.put_many("ns", "k", {"fresh": b"y"})  # a write purges expired rows
    assert s.info()["entries"] == 1


def test_redis_ttl(redis_url: str) -> None:
    from ctxcomp.cache import RedisStore

    s = RedisStore(redis_url, prefix="ttl", eviction=Eviction(ttl_seconds=0.2))
    s.put_many("ns", "k", {"a": b"1"})
    assert s.get_many("ns", "k", ["a"]) == {"a": b"1"}
    time.sleep(0.35)
    assert s.get_many("ns", "k", ["a"]) == {}
    s.clear()
