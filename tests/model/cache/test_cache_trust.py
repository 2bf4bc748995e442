"""A cache named anywhere means the same store; foreign files are never touched; one
namespace is exactly one namespace; poisoned or unauthenticated entries are never served."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxcomp.cache import (
    Artifact,
    CacheError,
    MemoryStore,
    SegmentCache,
    SQLiteStore,
    as_cache,
)
from ctxcomp.cache.token_scores import WINDOW_KIND
from ctxcomp.errors import MissingDependencyError
from tests.support.cache_helpers import counted


def _window(n: int = 6, p: float = 0.5) -> Artifact:
    return Artifact(WINDOW_KIND, {"ids": np.arange(n, dtype="<i4"), "p": np.full(n, p, "<f4")})


def _tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


# -- a Redis URL is Redis, wherever it is given ---------------------------------------------


def test_build_pipeline_with_a_redis_url_uses_redis_and_writes_no_file(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm_classifier_dir: Path
) -> None:
    import ctxcomp
    from ctxcomp.cache.redis_store import RedisStore

    monkeypatch.chdir(tmp_path)
    ns = f"t-{uuid.uuid4().hex[:8]}"
    comp = ctxcomp.build_pipeline(
        model=str(minilm_classifier_dir), device="cpu", cache=redis_url, namespace=ns, coarse=False
    )
    assert isinstance(comp.cache.store, RedisStore)
    text = "The committee met on Tuesday and approved the budget for the new library. " * 30
    a = comp.compress(text, ratio=0.3)
    assert comp.cache.stats.puts > 0
    b = comp.compress(text, ratio=0.3)
    assert a.text == b.text and comp.cache.stats.hits == comp.cache.stats.puts
    assert ns in RedisStore(redis_url).namespaces()
    assert _tree(tmp_path) == []  # no ./redis:/... file tree


@pytest.mark.parametrize("scheme", ["tcp", "unix"])
def test_every_way_to_name_a_cache_resolves_redis_urls(
    scheme: str, redis_url: str, redis_unix_url: str, tmp_path: Path, monkeypatch
) -> None:
    from ctxcomp.cache.redis_store import RedisStore
    from ctxcomp.cache.spec import open_store

    monkeypatch.chdir(tmp_path)
    url = redis_url if scheme == "tcp" else redis_unix_url
    for cache in (as_cache(url), SegmentCache(url)):
        assert isinstance(cache.store, RedisStore)
        ns = f"t-{uuid.uuid4().hex[:8]}"
        cache.put(ns, WINDOW_KIND, {"k": _window()})
        assert list(cache.get(ns, WINDOW_KIND, ["k"])) == ["k"]
    tls = open_store("rediss://127.0.0.1:1/0")  # TLS URL: a Redis store (not contacted here)
    assert isinstance(tls, RedisStore) and tls.url.startswith("rediss://")
    assert _tree(tmp_path) == []


def test_cli_config_and_cache_command_take_redis_urls(redis_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctxcomp.cache.redis_store import RedisStore
    from ctxcomp.cli import app

    ns = f"t-{uuid.uuid4().hex[:8]}"
    SegmentCache(RedisStore(redis_url)).put(ns, WINDOW_KIND, {"k": _window()})
    cfg = tmp_path / "pipe.toml"
    cfg.write_text(f'[ctxcomp]\ncache = "{redis_url}"\n', encoding="utf-8")
    run = CliRunner()
    for args in (["--config", str(cfg)], ["--path", redis_url]):
        r = run.invoke(app, ["cache", "stats", "--json", *args])
        assert r.exit_code == 0, r.output
        assert '"backend": "redis"' in r.stdout and ns in r.stdout
    r = run.invoke(app, ["cache", "clear", "-y", "-n", ns, "--path", redis_url])
    assert r.exit_code == 0 and "removed 1 entries" in r.output
    assert _tree(tmp_path) == ["pipe.toml"]


def test_redis_url_without_the_client_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///tmp/r.sock"):
        with pytest.raises(MissingDependencyError, match=r"pip install 'ctxcomp\[redis\]'"):
            as_cache(url)
    with pytest.raises(CacheError, match="unknown URL scheme 's3'"):
        as_cache("s3://bucket/cache")
    assert _tree(tmp_path) == []


# -- files that are not ours ---------------------------------------------------------------


def _foreign_db(p: Path) -> None:
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE people (name TEXT)")
    c.execute("INSERT INTO people VALUES ('Ada')")
    c.commit()
    c.close()


FOREIGN = {
    "text": lambda p: p.write_text("my notes\n" * 200, encoding="utf-8"),
    "empty": lambda p: p.write_bytes(b""),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 40),
    "sqlite-of-another-program": _foreign_db,
    "sqlite-with-another-app-id": lambda p: (
        _foreign_db(p),
        sqlite3.connect(p).execute("PRAGMA application_id = 1234").connection.close(),
    ),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_file_that_is_not_a_cache_is_refused_and_left_byte_for_byte(
    kind: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ctxcomp.cli import app

    p = tmp_path / "notes.txt"
    FOREIGN[kind](p)
    before, names = p.read_bytes(), _tree(tmp_path)
    with pytest.raises(CacheError, match="not a ctxcomp cache"):
        SQLiteStore(p)
    with pytest.raises(CacheError, match="not a ctxcomp cache"):
        as_cache(str(p))
    r = CliRunner().invoke(app, ["cache", "stats", "--path", str(p)])
    assert r.exit_code == 2 and "not a ctxcomp cache" in r.output and "Traceback" not in r.output
    cfg = tmp_path / "c.json"
    cfg.write_text(f'{{"cache": "{p}"}}', encoding="utf-8")
    r = CliRunner().invoke(app, ["cache", "clear", "-y", "--config", str(cfg)])
    assert r.exit_code == 2 and "not a ctxcomp cache" in r.output
    assert p.read_bytes() == before
    assert _tree(tmp_path) == sorted([*names, "c.json"])  # nothing renamed, nothing added


def test_a_cache_made_before_the_header_tag_is_recognised_and_tagged(tmp_path: Path) -> None:
    from ctxcomp.cache.sqlite_file import APPLICATION_ID
    from ctxcomp.cache.sqlite_schema import SCHEMA, split_sql

    p = tmp_path / "old.sqlite"
    c = sqlite3.connect(p, isolation_level=None)  # what earlier versions created
    for stmt in split_sql(SCHEMA):
        c.execute(stmt)
    c.close()
    s = SQLiteStore(p)
    s.put_many("ns", "k", {"a": b"1"})
    s.close()
    head = p.read_bytes()[:100]
    assert int.from_bytes(head[68:72], "big") == APPLICATION_ID
    assert SQLiteStore(p).get_many("ns", "k", ["a"]) == {"a": b"1"}


def test_cache_paths_that_cannot_be_a_file_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(CacheError, match="is a folder"):
        SQLiteStore(tmp_path / "folder")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CacheError, match="is a file, not a folder"):
        SQLiteStore(tmp_path / "afile" / "c.sqlite")
    assert (tmp_path / "afile").read_text() == "x"


def _read_only(p: Path) -> None:
    """Make ``p`` really read-only: permissions, or the immutable flag when we are root
    (root writes through permissions); skip where neither works."""
    import os
    import subprocess

    if os.geteuid() != 0:
        p.chmod(0o555 if p.is_dir() else 0o444)
    elif (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode
    ):
        pytest.skip("cannot make a read-only file here (root, and no chattr +i)")
    try:
        (p / "probe").touch() if p.is_dir() else open(p, "ab").close()
    except OSError:
        return
    _writable(p)
    pytest.skip("this file system does not enforce read-only files")


def _writable(p: Path) -> None:
    import os
    import subprocess

    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(p)], capture_output=True)
    p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_cache_is_a_clear_error(what: str, tmp_path: Path) -> None:
    p = tmp_path / "c.sqlite"
    if what == "file":
        SQLiteStore(p).close()
        ro = p
    else:
        ro = tmp_path / "sub"
        ro.mkdir()
        p = ro / "c.sqlite"
    before = _tree(tmp_path)
    _read_only(ro)
    try:
        with pytest.raises(CacheError, match=r"read-only|cannot be created") as e:
            SQLiteStore(p)
        assert str(p) in str(e.value)
    finally:
        _writable(ro)
    assert _tree(tmp_path) == before


# -- one namespace is exactly one namespace -------------------------------------------------

_NS_CHARS = st.sampled_from(list("ab:*?[]^-\\%/.@_Z9"))
_NAMESPACE = st.text(_NS_CHARS, min_size=1, max_size=12)


def _exact_namespace_property(store_for, a: str, b: str) -> None:
    store = store_for()
    others = {b, a + ":user:7", a + ":", a + "*", a + "?", "x" + a, a + "%3A"} - {a}
    store.put_many(a, "tc.window", {"k1": b"a1", "k2": b"a2"})
    store.put_many(a, "embedding:abc", {"k3": b"a3"})
    for o in others:
        store.put_many(o, "tc.window", {"k1": b"o1"})
        store.put_many(o, "embedding:abc", {"k3": b"o3"})
    info = store.info()["namespaces"]
    assert info[a]["entries"] == 3
    assert dict(store.iter_kind(a, "embedding:abc")) == {"k3": b"a3"}
    assert dict(store.iter_kind(a, "embedding")) == {}
    assert store.clear(a) == 3
    assert a not in store.namespaces()
    for o in others:
        assert store.get_many(o, "tc.window", ["k1"]) == {"k1": b"o1"}, o
        assert dict(store.iter_kind(o, "embedding:abc")) == {"k3": b"o3"}, o
    assert store.get_many(a, "tc.window", ["k1", "k2"]) == {}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=_NAMESPACE, b=_NAMESPACE)
def test_redis_clear_removes_exactly_one_namespace(redis_url: str, a: str, b: str) -> None:
    from ctxcomp.cache.redis_store import RedisStore

    prefix = f"t{uuid.uuid4().hex[:10]}"
    _exact_namespace_property(lambda: RedisStore(redis_url, prefix=prefix), a, b)
    RedisStore(redis_url, prefix=prefix).clear()


def test_redis_org_42_example(redis_url: str) -> None:
    from ctxcomp.cache.redis_store import RedisStore

    cache = SegmentCache(RedisStore(redis_url, prefix=f"t{uuid.uuid4().hex[:10]}"))
    cache.put("org:42", WINDOW_KIND, {"k": _window()})
    cache.put("org:42:user:7", WINDOW_KIND, {"k": _window()})
    assert cache.clear("org:42") == 1
    assert list(cache.get("org:42:user:7", WINDOW_KIND, ["k"])) == ["k"]


@settings(max_examples=25, deadline=None)
@given(a=_NAMESPACE, b=_NAMESPACE)
def test_memory_and_sqlite_clear_exactly_one_namespace(a: str, b: str) -> None:
    import tempfile

    _exact_namespace_property(MemoryStore, a, b)
    with tempfile.TemporaryDirectory() as d:
        _exact_namespace_property(lambda: SQLiteStore(Path(d) / "c.sqlite"), a, b)


# -- values are checked; shared caches are authenticated -------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30, -1e-3, 1.0001])
def test_poisoned_probabilities_with_a_valid_checksum_are_not_served(bad: float) -> None:
    store = MemoryStore()
    cache = SegmentCache(store)
    art = _window()
    art.arrays["p"][2] = bad
    store.put_many("ns", WINDOW_KIND, {"k": art.encode()})  # checksum is valid
    assert cache.get("ns", WINDOW_KIND, ["k"]) == {}
    assert cache.stats.corrupt == 1 and store.get_many("ns", WINDOW_KIND, ["k"]) == {}


def test_poisoned_cache_never_changes_a_compression(minilm_compressor, essays) -> None:
    from ctxcomp.cache.artifact import decode

    doc = essays["copy"][:4000]
    store = MemoryStore()
    c, pred = counted(minilm_compressor, SegmentCache(store))
    clean = c.compress(doc, ratio=0.3)
    rows = list(store.iter_kind("default", WINDOW_KIND))
    assert rows
    for k, v in rows:  # an attacker with write access rewrites every window, checksum and all
        a = decode(v, kind=WINDOW_KIND)
        poisoned = np.where(a.arrays["p"] < 0.5, 1e30, np.nan).astype("<f4")
        store.put_many(
            "default", WINDOW_KIND, {k: Artifact(WINDOW_KIND, {**a.arrays, "p": poisoned}).encode()}
        )
    again = c.compress(doc, ratio=0.3)
    assert again.text == clean.text and pred.calls == 2  # scored afresh, not served


KEY = "k" * 32


def test_keyed_cache_serves_only_entries_it_wrote(redis_url: str) -> None:
    from ctxcomp.cache.redis_store import RedisStore

    store = RedisStore(redis_url, prefix=f"t{uuid.uuid4().hex[:10]}")
    cache = SegmentCache(store, key=KEY)
    assert cache.keyed
    cache.put("ns", WINDOW_KIND, {"a": _window(p=0.25)})
    assert list(cache.get("ns", WINDOW_KIND, ["a"])) == ["a"]
    # a writer without the key: a perfectly well-formed entry, not authenticated
    store.put_many("ns", WINDOW_KIND, {"b": _window(p=0.9).encode()})
    # the sealed bytes of "a" copied under another key and into another namespace
    sealed = store.get_many("ns", WINDOW_KIND, ["a"])["a"]
    store.put_many("ns", WINDOW_KIND, {"c": sealed})
    store.put_many("other", WINDOW_KIND, {"a": sealed})
    assert list(cache.get("ns", WINDOW_KIND, ["a", "b", "c"])) == ["a"]
    assert cache.get("other", WINDOW_KIND, ["a"]) == {}
    assert cache.stats.unauthenticated == 3
    # another key, or no key: nothing is served, nothing is deleted
    assert SegmentCache(store, key="x" * 32).get("ns", WINDOW_KIND, ["a"]) == {}
    assert SegmentCache(store).get("ns", WINDOW_KIND, ["a"]) == {}
    assert "a" in store.get_many("ns", WINDOW_KIND, ["a"])
    store.clear()


def test_cache_key_from_the_environment_and_too_short_keys(monkeypatch) -> None:
    monkeypatch.setenv("CTXCOMP_CACHE_KEY", KEY)
    store = MemoryStore()
    SegmentCache(store).put("ns", WINDOW_KIND, {"a": _window()})
    assert list(SegmentCache(store, key=KEY).get("ns", WINDOW_KIND, ["a"])) == ["a"]
    monkeypatch.delenv("CTXCOMP_CACHE_KEY")
    assert SegmentCache(store).get("ns", WINDOW_KIND, ["a"]) == {}
    with pytest.raises(CacheError, match="at least 16 bytes"):
        SegmentCache(store, key="short")


def test_pipeline_config_cache_key_reaches_the_cache(tmp_path: Path, minilm_classifier_dir) -> None:
    import ctxcomp

    comp = ctxcomp.build_pipeline(
        model=str(minilm_classifier_dir),
        device="cpu",
        coarse=False,
        cache=str(tmp_path / "c.sqlite"),
        cache_key=KEY,
    )
    assert comp.cache.keyed
    assert KEY not in repr(ctxcomp.PipelineConfig(cache_key=KEY))


class _StubEmbedder:
    dim = 8
    fingerprint = "stub"

    def encode(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        v = rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_index_rebuild_takes_only_sane_authenticated_embeddings() -> None:
    pytest.importorskip("faiss")
    from ctxcomp.cache.segment_cache import EMBEDDING_KIND

    store = MemoryStore()
    emb = _StubEmbedder()
    keyed = SegmentCache(store, near=True, embedder=emb, key=KEY)
    keyed.near_add("ns", ["k1", "k2"], emb.encode(["a", "b"]))
    assert len(SegmentCache(store, near=True, embedder=emb, key=KEY).rebuild_index("ns")) == 2
    assert len(SegmentCache(store, near=True, embedder=emb).rebuild_index("ns")) == 0  # no key
    plain = SegmentCache(MemoryStore(), near=True, embedder=emb)
    kind = f"{EMBEDDING_KIND}:{emb.fingerprint}"
    v = emb.encode(["c"])[0]
    plain.store.put_many(
        "ns",
        kind,
        {
            "ok": Artifact(EMBEDDING_KIND, {"v": v}).encode(),
            "huge": Artifact(EMBEDDING_KIND, {"v": v * 1e30}).encode(),
            "nan": Artifact(EMBEDDING_KIND, {"v": np.full(8, np.nan, np.float32)}).encode(),
            "dim": Artifact(EMBEDDING_KIND, {"v": np.ones(4, np.float32) / 2}).encode(),
        },
    )
    idx = plain.rebuild_index("ns")
    assert len(idx) == 1
