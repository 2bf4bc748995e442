"""Faults: concurrent writers, writers killed mid-write, corrupt files, Redis down."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from ctxcomp.cache import (
    Artifact,
    CacheUnavailableError,
    MemoryStore,
    SegmentCache,
    SQLiteStore,
)
from ctxcomp.cache.artifact import decode

REPO = Path(__file__).resolve().parents[2]


def _value(key: str, size: int) -> bytes:
    """Deterministic content for a key, so any reader can check what it got."""
    import hashlib

    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    arr = rng.integers(0, 255, size, dtype=np.uint8)
    return Artifact("blob", {"b": arr}, meta={"key": key}).encode()


def _check(key: str, raw: bytes) -> None:
    a = decode(raw, kind="blob")
    assert a.meta["key"] == key
    assert raw == _value(key, a.arrays["b"].size)


# -- 8 processes at once ------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, random
    sys.path.insert(0, sys.argv[3])
    from tests.cache.test_cache_faults import _value, _check
    from ctxcomp.cache import SQLiteStore
    path, wid = sys.argv[1], int(sys.argv[2])
    s = SQLiteStore(path)
    rnd = random.Random(wid)
    for it in range(60):
        batch = {}
        for j in range(rnd.randint(1, 4)):
            shared = rnd.random() < 0.3  # some keys are written by every worker
            k = f"shared-{rnd.randint(0, 20)}" if shared else f"w{wid}-{it}-{j}"
            batch[k] = _value(k, 3000 if shared else 2000 + 1000 * (it % 3))
        s.put_many("ns", "blob", batch)
        # read some keys written by any worker, verify every byte
        probe = [f"w{rnd.randint(0, 7)}-{rnd.randint(0, it)}-0" for _ in range(5)] + [f"shared-{rnd.randint(0, 20)}"]
        for k, v in s.get_many("ns", "blob", probe).items():
            _check(k, v)
    print("ok")
    """
)


def test_eight_processes_read_and_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    SQLiteStore(path).close()  # create the schema once
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(w), str(REPO)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for w in range(8)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        assert out.strip() == b"ok"
    s = SQLiteStore(path)
    assert s.integrity_ok()
    # every worker's own keys are all there (nothing lost), and every value is intact
    rows = dict(s.iter_kind("ns", "blob"))
    for k, v in rows.items():
        _check(k, v)
    for w in range(8):
        rnd = random.Random(w)
        expected = set()
        for it in range(60):
            for j in range(rnd.randint(1, 4)):
                shared = rnd.random() < 0.3
                k = f"shared-{rnd.randint(0, 20)}" if shared else f"w{w}-{it}-{j}"
                if not shared:
                    expected.add(k)
            for _ in range(5):
                rnd.randint(0, 7), rnd.randint(0, it)
            rnd.randint(0, 20)
        assert expected <= set(rows), f"worker {w} lost {sorted(expected - set(rows))[:5]}"
    info = s.info()
    assert info["entries"] == len(rows)
    assert info["bytes"] == sum(len(v) for v in rows.values())


# -- SIGKILL mid-write, 100 times -------------------------------------------------------------


def _writer(path: str, seed: int, started) -> None:  # runs in a forked child
    s = SQLiteStore(path, check="header")
    rnd = random.Random(seed)
    b = 0
    while True:
        n = rnd.randint(1, 4)
        batch = {f"s{seed}-b{b}-{j}of{n}": b"" for j in range(n)}
        batch = {k: _value(k, rnd.randint(100_000, 400_000)) for k in batch}
        if b == 0:
            started.set()
        s.put_many("ns", "blob", batch)
        b += 1


def test_writer_killed_100_times_never_leaves_partial_entries(tmp_path: Path) -> None:
    path = tmp_path / "kill.sqlite"
    SQLiteStore(path).close()
    ctx = multiprocessing.get_context("fork")
    rnd = random.Random(7)
    for i in range(100):
        started = ctx.Event()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            p = ctx.Process(target=_writer, args=(str(path), i, started), daemon=True)
            p.start()
        assert started.wait(30)
        time.sleep(rnd.uniform(0.0, 0.03))
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        assert p.exitcode == -signal.SIGKILL
    s = SQLiteStore(path)
    assert s.quarantined == []  # a killed writer does not corrupt the file
    assert s.integrity_ok()
    cache = SegmentCache(s)
    rows = dict(s.iter_kind("ns", "blob"))
    assert rows, "no batch was ever committed: the test did not exercise anything"
    got = cache.get("ns", "blob", list(rows))
    assert cache.stats.corrupt == 0 and len(got) == len(rows)
    batches: dict[str, set[str]] = {}
    for k, v in rows.items():
        _check(k, v)
        batches.setdefault(k.rsplit("-", 1)[0], set()).add(k)
    for bid, ks in batches.items():  # all-or-nothing: every batch is complete
        n = int(next(iter(ks)).rsplit("of", 1)[1])
        assert len(ks) == n, f"batch {bid} is partial: {sorted(ks)}"
    info = s.info()
    assert info["entries"] == len(rows) and info["bytes"] == sum(len(v) for v in rows.values())


# -- corrupt or truncated files ----------------------------------------------------------


def _filled(path: Path, n: int = 40) -> dict[str, bytes]:
    s = SQLiteStore(path)
    items = {f"k{i}": _value(f"k{i}", 5000) for i in range(n)}
    s.put_many("ns", "blob", items)
    s.close()
    c = sqlite3.connect(path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return items


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate-mid-page":
        path.write_bytes(bytes(data[: len(data) // 2 + 123]))
    elif how == "truncate-whole-pages":
        page = int.from_bytes(data[16:18], "big")
        path.write_bytes(bytes(data[: (len(data) // page // 2) * page]))
    elif how == "garbage-pages":
        rnd = random.Random(1)
        page = int.from_bytes(data[16:18], "big")
        for pg in range(1, len(data) // page):
            for _ in range(64):
                data[pg * page + rnd.randrange(page)] = rnd.randrange(256)
        path.write_bytes(bytes(data))
    elif how == "bad-header":
        data[0:16] = b"not a database!!"
        path.write_bytes(bytes(data))
    elif how == "text-file":
        path.write_text("hello, I am not a cache\n" * 100)
    elif how == "tiny":
        path.write_bytes(b"SQLite format 3\x00")


@pytest.mark.parametrize("how", ["truncate-mid-page", "truncate-whole-pages", "garbage-pages"])
def test_corrupt_file_is_detected_set_aside_and_rebuilt(tmp_path: Path, how: str) -> None:
    path = tmp_path / "c.sqlite"
    _filled(path)
    _damage(path, how)
    s = SQLiteStore(path)
    assert len(s.quarantined) == 1 and s.quarantined[0].exists()
    assert s.quarantined[0].name.startswith("c.sqlite.corrupt-")
    assert s.info()["entries"] == 0  # rebuilt empty: nothing from the bad file is served
    s.put_many("ns", "blob", {"new": _value("new", 100)})
    assert list(s.get_many("ns", "blob", ["new", "k1"])) == ["new"]
    assert s.integrity_ok()


@pytest.mark.parametrize("how", ["bad-header", "text-file", "tiny"])
def test_damage_that_hides_whose_file_it_is_is_refused_not_moved(tmp_path: Path, how: str) -> None:
    """Without the SQLite header and ctxcomp's application id nobody can prove the file is a
    cache: it is reported and left byte for byte as it is (it may be someone's data)."""
    from ctxcomp.cache import CacheError

    path = tmp_path / "c.sqlite"
    _filled(path)
    _damage(path, how)
    before = path.read_bytes()
    with pytest.raises(CacheError, match="not a ctxcomp cache"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite"]


def test_corrupted_entry_inside_a_healthy_file_is_never_served(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    items = _filled(path, 5)
    c = sqlite3.connect(path)
    # flip one byte in the middle of one stored value (a silent bit rot)
    v = bytearray(items["k2"])
    v[len(v) // 2] ^= 0xFF
    c.execute("UPDATE entries SET value = ? WHERE key = 'k2'", (bytes(v),))
    c.execute("UPDATE entries SET value = substr(value, 1, 100) WHERE key = 'k3'")  # truncated
    c.commit()
    c.close()
    cache = SegmentCache(SQLiteStore(path))
    got = cache.get("ns", "blob", [f"k{i}" for i in range(5)])
    assert sorted(got) == ["k0", "k1", "k4"]
    assert cache.stats.corrupt == 2
    assert cache.store.get_many("ns", "blob", ["k2", "k3"]) == {}  # removed, so rewritten later


def test_corruption_found_while_running_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    _filled(path)
    s = SQLiteStore(path)
    assert len(s.get_many("ns", "blob", ["k1"])) == 1
    s.close()
    _damage(path, "garbage-pages")
    # the open connection was closed; the next call reopens, detects, rebuilds
    assert s.get_many("ns", "blob", ["k1"]) == {}
    assert len(s.quarantined) == 1


# -- Redis unreachable ------------------------------------------------------------------


def _closed_port() -> int:
    from cache_test_helpers import free_port

    return free_port()  # bound then released: nothing listens there


def test_redis_down_raises_a_clear_error_quickly() -> None:
    pytest.importorskip("redis")
    from ctxcomp.cache import RedisStore

    s = RedisStore(f"redis://127.0.0.1:{_closed_port()}/0", connect_timeout=0.5, socket_timeout=0.5)
    t = time.monotonic()
    with pytest.raises(CacheUnavailableError, match="unreachable"):
        s.get_many("ns", "k", ["a"])
    with pytest.raises(CacheUnavailableError):
        s.put_many("ns", "k", {"a": b"1"})
    assert time.monotonic() - t < 3


def test_redis_that_accepts_but_never_answers_times_out() -> None:
    pytest.importorskip("redis")
    from ctxcomp.cache import RedisStore

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # the kernel completes handshakes; nobody ever replies
    try:
        s = RedisStore(
            f"redis://127.0.0.1:{srv.getsockname()[1]}/0", connect_timeout=0.5, socket_timeout=0.5
        )
        t = time.monotonic()
        with pytest.raises(CacheUnavailableError):
            s.get_many("ns", "k", ["a"])
        assert time.monotonic() - t < 3
        t = time.monotonic()
        with pytest.raises(CacheUnavailableError):  # circuit open: no second wait
            s.get_many("ns", "k", ["a"])
        assert time.monotonic() - t < 0.1
        s.close()
    finally:
        srv.close()


def test_redis_down_with_chosen_fallbacks() -> None:
    pytest.importorskip("redis")
    from ctxcomp.cache import RedisStore

    url = f"redis://127.0.0.1:{_closed_port()}/0"
    bypass = RedisStore(url, connect_timeout=0.3, fallback="bypass")
    bypass.put_many("ns", "k", {"a": b"1"})  # dropped, no error
    assert bypass.get_many("ns", "k", ["a"]) == {}
    assert bypass.info()["unavailable"] is True
    local = MemoryStore()
    other = RedisStore(url, connect_timeout=0.3, fallback=local)
    other.put_many("ns", "k", {"a": b"1"})
    assert other.get_many("ns", "k", ["a"]) == {"a": b"1"}
    assert local.get_many("ns", "k", ["a"]) == {"a": b"1"}
