"""FAISS near-duplicate index, and near-duplicate reuse that never leaks other text."""

from __future__ import annotations

import numpy as np
import pytest

from ctxcomp.cache import CacheError, MemoryStore, SegmentCache
from ctxcomp.cache.align import fresh_spans, reuse_scores
from tests.support.cache_helpers import counted as _counted

faiss = pytest.importorskip("faiss")


def clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(4, n // 50), dim)).astype(np.float32)
    v = centers[rng.integers(0, centers.shape[0], n)] + 0.3 * rng.standard_normal((n, dim)).astype(
        np.float32
    )
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_index_is_exact_and_maps_keys() -> None:
    from ctxcomp.cache import NearIndex

    v = clustered(300)
    idx = NearIndex(64)
    idx.add([f"k{i}" for i in range(300)], v)
    sims, keys = idx.search(v[:20], 1)
    assert [k[0] for k in keys] == [f"k{i}" for i in range(20)]
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5)
    assert idx.current == "flat" and not idx.on_gpu
    with pytest.raises(CacheError):
        idx.add(["a"], np.zeros((1, 8), np.float32))


@pytest.mark.parametrize("kind", ["auto", "hnsw"])
def test_large_index_switches_type_and_keeps_recall(kind: str) -> None:
    from ctxcomp.cache import NearIndex

    v = clustered(3000)
    idx = NearIndex(64, kind=kind, exact_below=1000)
    for i in range(0, 3000, 500):  # grows past the threshold in steps
        idx.add([f"k{j}" for j in range(i, i + 500)], v[i : i + 500])
    assert idx.current == ("ivf" if kind == "auto" else kind) and len(idx) == 3000
    q = v[:500] + 0.05 * np.random.default_rng(1).standard_normal((500, 64)).astype(np.float32)
    exact = faiss.IndexFlatIP(64)
    exact.add(v)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    _, truth = exact.search(qn, 1)
    _, keys = idx.search(q, 1)
    recall = np.mean([k[0] == f"k{t}" for k, t in zip(keys, truth[:, 0])])
    assert recall >= 0.95


def test_index_persists_and_rejects_a_mismatched_key_table(tmp_path) -> None:
    from ctxcomp.cache import NearIndex

    v = clustered(200)
    idx = NearIndex.build([f"k{i}" for i in range(200)], v, 64, exact_below=100, kind="hnsw")
    idx.save(tmp_path / "i.faiss")
    back = NearIndex.load(tmp_path / "i.faiss", 64, exact_below=100, kind="hnsw")
    assert back.current == "hnsw" and back.keys == idx.keys
    assert back.search(v[5], 1)[1][0][0] == "k5"
    (tmp_path / "i.faiss.keys").write_text("hnsw\nonly-one-key", encoding="ascii")
    with pytest.raises(CacheError):
        NearIndex.load(tmp_path / "i.faiss", 64)
    with pytest.raises(CacheError):
        NearIndex.load(tmp_path / "missing.faiss", 64)


def test_ivf_retrains_as_it_grows_and_persists(tmp_path) -> None:
    from ctxcomp.cache import NearIndex

    v = clustered(2400)
    idx = NearIndex(64, exact_below=100)
    idx.add([f"k{i}" for i in range(150)], v[:150])
    assert idx.current == "ivf" and idx._trained_for == 150
    idx.add([f"k{i}" for i in range(150, 2400)], v[150:])
    assert idx._trained_for == 2400 and len(idx) == 2400  # grew > 4x: retrained
    assert idx.search(v[2000], 1)[1][0][0] == "k2000"
    idx.save(tmp_path / "v.faiss")
    back = NearIndex.load(tmp_path / "v.faiss", 64, exact_below=100)
    assert back.current == "ivf" and back.search(v[7], 1)[1][0][0] == "k7"
    back.add(["extra"], v[:1])
    assert len(back) == 2401


def test_gpu_path_is_guarded(monkeypatch) -> None:
    from ctxcomp.cache import NearIndex
    from ctxcomp.cache import index as index_mod

    with pytest.raises(CacheError, match="GPU"):
        NearIndex(16, use_gpu=True)  # no GPU here: asking for one is an error
    calls = []

    class FakeRes:
        pass

    def to_gpu(res, dev, index):
        calls.append(type(index).__name__)
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(index_mod, "gpu_available", lambda faiss=None: True)
    monkeypatch.setattr(faiss, "StandardGpuResources", FakeRes, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    idx = NearIndex(16)  # "auto" tries the GPU, falls back to the CPU with a note
    assert calls and not idx.on_gpu and "CUDA out of memory" in (idx.gpu_note or "")
    idx.add(["a"], np.ones((1, 16), np.float32))
    assert idx.search(np.ones(16, np.float32), 1)[1][0][0] == "a"


def test_alignment_reuses_only_equal_tokens() -> None:
    old = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], np.int64)
    p = np.linspace(0.05, 0.6, 12).astype(np.float32)
    new = np.array([1, 2, 3, 4, 5, 99, 98, 7, 8, 9, 10, 11, 12], np.int64)
    probs, known = reuse_scores(old, p, new, margin=1)
    for j in np.flatnonzero(known):
        i = int(np.flatnonzero(old == new[j])[0])
        assert new[j] == old[i] and probs[j] == p[i]
    assert not known[5] and not known[6]  # the inserted tokens
    assert not known[4] and not known[7]  # margins next to the edit
    spans = fresh_spans(known, context=2)
    assert spans == [(2, 10, [(4, 8)])]


@pytest.fixture(scope="module")
def embedder(minilm_path: str):
    pytest.importorskip("sentence_transformers")
    from ctxcomp.cache import Embedder

    return Embedder(minilm_path)


def test_near_duplicate_reuse_scores_only_the_edits(
    minilm_compressor, essays, embedder, tmp_path
) -> None:
    base = essays["copy"][:5000]
    cache = SegmentCache(MemoryStore(), near=True, embedder=embedder, index_dir=tmp_path / "idx")
    c, pred = _counted(minilm_compressor, cache, "t1")
    c.compress(base, ratio=0.3)
    full_tokens = pred.tokens
    # an edited copy: words changed, a sentence inserted
    edited = base.replace("imitating", "copying", 1).replace("Good writing", "Great writing", 1)
    cut = edited.index(".", 1500) + 1
    edited = edited[:cut] + " ZEBRA QUOKKA sentences appear only in the new text." + edited[cut:]
    pred.tokens = 0
    res = c.compress(edited, ratio=0.3)
    assert cache.stats.near_hits >= 1
    assert 0 < pred.tokens < 0.6 * full_tokens
    # the output comes from the new input only: kept spans are ordered, disjoint ranges of
    # the NEW text, and every character of the output piece is one of them (or a separator)
    spans = res.documents[0].kept_spans
    assert all(0 <= a.start < a.end <= len(edited) for a in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    kept_chars = "".join(edited[sp.start : sp.end] for sp in spans)
    assert "".join(res.documents[0].text.split()) == "".join(kept_chars.split())
    fresh = minilm_compressor.compress(edited, ratio=0.3)
    # reused probabilities are approximate (context and absolute positions shift after an
    # edit) but rank words much as a fresh forward does, and the verdicts mostly agree
    rank = np.corrcoef(
        np.argsort(np.argsort(res.scores[0].probs)), np.argsort(np.argsort(fresh.scores[0].probs))
    )[0, 1]
    assert rank > 0.85
    assert np.mean(res.scores[0].kept == fresh.scores[0].kept) > 0.85
    # near-reused windows are not written as exact entries
    pred.tokens = 0
    c.compress(edited, ratio=0.5)
    assert pred.tokens > 0
    # the index persists and is reloaded (or rebuilt from the store) by a new cache object
    cache.save_indexes()
    assert list((tmp_path / "idx").glob("*.faiss"))
    cache2 = SegmentCache(cache.store, near=True, embedder=embedder, index_dir=tmp_path / "idx")
    assert len(cache2.index("t1")) == len(cache.index("t1")) > 0
    assert len(cache2.rebuild_index("t1")) == len(cache.index("t1"))


def test_near_lookup_never_crosses_namespaces(minilm_compressor, essays, embedder) -> None:
    base = essays["avg"][:3000]
    cache = SegmentCache(MemoryStore(), near=True, embedder=embedder)
    a, _ = _counted(minilm_compressor, cache, "tenant-a")
    a.compress(base, ratio=0.3)
    b, pb = _counted(minilm_compressor, cache, "tenant-b")
    before = cache.stats.near_hits
    b.compress(base.replace("the", "teh", 1), ratio=0.3)  # a near duplicate of tenant-a's text
    assert cache.stats.near_hits == before  # nothing found: tenant-b's index is empty
    assert len(cache.index("tenant-b")) > 0 and pb.tokens > 0
    # tenant-b's search results only ever contain tenant-b keys
    keys_b = set(cache.index("tenant-b").keys)
    keys_a = set(cache.index("tenant-a").keys)
    assert keys_b and keys_a and cache.index("tenant-b") is not cache.index("tenant-a")
