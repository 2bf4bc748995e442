"""The token classifier with a cache: identical outputs, no forward on a re-compress."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ctxcomp.cache import MemoryStore, SegmentCache, SQLiteStore
from tests.support.cache_helpers import counted, free_port


@pytest.fixture(scope="module")
def doc(essays: dict[str, str]) -> str:
    return essays["copy"][:7000]


@pytest.fixture(scope="module")
def fresh(minilm_compressor, doc: str):
    return {r: minilm_compressor.compress(doc, ratio=r) for r in (0.2, 0.4)}


def _probs(res) -> np.ndarray:
    return np.concatenate([s.probs for s in res.scores])


def test_cache_gives_identical_outputs_and_skips_the_model(
    minilm_compressor, doc, fresh, tmp_path
) -> None:
    cache = SegmentCache(SQLiteStore(tmp_path / "c.sqlite"))
    c, pred = counted(minilm_compressor, cache)
    first = c.compress(doc, ratio=0.2)
    assert first.text == fresh[0.2].text
    np.testing.assert_array_equal(_probs(first), _probs(fresh[0.2]))
    n_windows = cache.stats.puts
    assert pred.calls == 1 and n_windows >= 2 and cache.stats.misses == n_windows
    # a new budget, a token target, another selection mode: no model call at all
    again = c.compress(doc, ratio=0.4)
    assert again.text == fresh[0.4].text
    c.compress(doc, target_tokens=150)
    c.options = dataclasses.replace(c.options, mode="per_chunk")
    c.compress(doc, ratio=0.3)
    assert pred.calls == 1
    assert cache.stats.hits == 3 * n_windows and cache.stats.hit_rate == pytest.approx(0.75)
    # a second process (a new cache object on the same file) hits too
    c2, pred2 = counted(minilm_compressor, SegmentCache(SQLiteStore(tmp_path / "c.sqlite")))
    assert c2.compress(doc, ratio=0.2).text == fresh[0.2].text
    assert pred2.calls == 0


def test_cache_key_covers_the_model_and_the_namespace(minilm_compressor, doc) -> None:
    cache = SegmentCache(MemoryStore())
    a, pa = counted(minilm_compressor, cache, "tenant-a")
    a.compress(doc, ratio=0.3)
    b, pb = counted(minilm_compressor, cache, "tenant-b")
    b.compress(doc, ratio=0.3)  # another tenant never sees tenant-a's entries
    assert pa.tokens == pb.tokens > 0
    other, po = counted(minilm_compressor, cache, "tenant-a")
    other._model.fingerprint = "another-checkpoint"  # e.g. a new model revision
    other.compress(doc, ratio=0.3)
    assert po.tokens == pa.tokens


def test_duplicate_documents_in_a_batch_are_scored_once(minilm_compressor, doc) -> None:
    cache = SegmentCache(MemoryStore())
    c, pred = counted(minilm_compressor, cache)
    out = c.compress_batch([[doc, "A short note."], [doc]], ratio=0.3)
    np.testing.assert_array_equal(out[0].scores[0].probs, out[1].scores[0].probs)
    single, ps = counted(minilm_compressor, SegmentCache(MemoryStore()))
    single.compress([doc, "A short note."], ratio=0.3)
    assert pred.tokens == ps.tokens


def test_cache_argument_forms(minilm_classifier_dir, tmp_path, monkeypatch) -> None:
    import ctxcomp
    from ctxcomp.cache import CacheError

    monkeypatch.setenv("CTXCOMP_CACHE", str(tmp_path / "default.sqlite"))
    c = ctxcomp.TokenClassifierCompressor(
        str(minilm_classifier_dir), device="cpu", cache=True, namespace="t1"
    )
    assert isinstance(c.cache, SegmentCache) and c.cache.store.path == tmp_path / "default.sqlite"
    c = ctxcomp.load_compressor(
        str(minilm_classifier_dir), device="cpu", cache=str(tmp_path / "x.sqlite")
    )
    assert isinstance(c.cache.store, SQLiteStore) and c.namespace == "default"
    assert ctxcomp.TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu").cache is None
    with pytest.raises(CacheError):
        ctxcomp.TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu", cache=42)
    with pytest.raises(CacheError, match="namespace"):
        ctxcomp.TokenClassifierCompressor(
            str(minilm_classifier_dir), device="cpu", cache=True, namespace="a b"
        )
    assert "cache" not in c.config()  # the cache never changes an exact-hit output


def test_redis_backed_cache(minilm_compressor, doc, fresh, redis_url) -> None:
    from ctxcomp.cache import RedisStore

    store = RedisStore(redis_url, prefix="tc")
    c, pred = counted(minilm_compressor, SegmentCache(store))
    assert c.compress(doc, ratio=0.2).text == fresh[0.2].text
    assert c.compress(doc, ratio=0.4).text == fresh[0.4].text
    assert pred.calls == 1
    store.clear()


def test_redis_down_with_bypass_still_compresses(minilm_compressor, doc, fresh) -> None:
    from ctxcomp.cache import CacheUnavailableError, RedisStore

    url = f"redis://127.0.0.1:{free_port()}/0"
    c, _ = counted(
        minilm_compressor, SegmentCache(RedisStore(url, connect_timeout=0.3, fallback="bypass"))
    )
    assert c.compress(doc, ratio=0.2).text == fresh[0.2].text
    strict, _ = counted(minilm_compressor, SegmentCache(RedisStore(url, connect_timeout=0.3)))
    with pytest.raises(CacheUnavailableError):
        strict.compress(doc, ratio=0.2)
