"""A window's keep probabilities depend on the window alone, whatever shares its batch, on
every backend that runs here: so a cached compressor (which scores only the windows it has
not seen) returns exactly what an uncached one does (issue 14, part 4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ctxcomp

pytest.importorskip("torch")
pytest.importorskip("transformers")

BACKENDS = ["torch", "torch-bf16", "onnx", "torch-int8", "onnx-int8"]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    mp = pytest.MonkeyPatch()
    mp.setenv("CTXCOMP_CACHE_DIR", str(tmp_path_factory.mktemp("ctxcomp-cache")))
    yield
    mp.undo()


def _compressor(model, tok, backend, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 emulated on CPUs without it
        return ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend=backend, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_probabilities_ignore_batch_companions(backend, tiny_bert, onnx_cache):
    model, tok = tiny_bert
    m = _compressor(model, tok, backend)._model
    rng = np.random.default_rng(0)
    windows = [rng.integers(1000, 20000, size=int(n)) for n in rng.integers(1, 500, 24)]
    together = m.predict(windows)
    for trial in range(6):
        sub = rng.choice(len(windows), size=int(rng.integers(1, 9)), replace=False)
        for i, p in zip(sub.tolist(), m.predict([windows[i] for i in sub])):
            np.testing.assert_array_equal(p, together[i], err_msg=f"window {i}, trial {trial}")


def test_default_model_window_probabilities_ignore_batch_companions():
    """The embedded default under its own backend ("auto": oneDNN bf16 on CPUs with native
    bf16, where one-row batches used to round differently)."""
    from ctxcomp.models import load_default

    m = load_default()._model
    rng = np.random.default_rng(1)
    windows = [rng.integers(1000, 20000, size=int(n)) for n in rng.integers(20, 200, 9)]
    together = m.predict(windows)
    for i in range(len(windows)):
        np.testing.assert_array_equal(m.predict([windows[i]])[0], together[i])
    pair = m.predict([windows[0], windows[5]])
    np.testing.assert_array_equal(pair[1], together[5])


def _queries(essays, n=20, seed=0, pool=30):
    """Requests over a pool of paragraphs: each mixes documents seen before with new ones."""
    paras = [p for t in essays.values() for p in t.split("\n\n") if 300 < len(p) < 1200][:pool]
    rng = np.random.default_rng(seed)
    return [
        [paras[int(i)] for i in rng.choice(len(paras), size=int(rng.integers(1, 4)), replace=False)]
        for _ in range(n)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cached_equals_uncached(backend, tiny_bert, essays, onnx_cache):
    from ctxcomp.cache import MemoryStore, SegmentCache

    model, tok = tiny_bert
    plain = _compressor(model, tok, backend)
    cached = _compressor(model, tok, backend, cache=SegmentCache(MemoryStore()))
    for docs in _queries(essays):
        assert cached.compress(docs, ratio=0.4).text == plain.compress(docs, ratio=0.4).text
    assert cached.cache.stats.hits > 0 and cached.cache.stats.misses > 0


def test_default_cached_equals_uncached(essays):
    """The issue's probe: the embedded default model, default backend, requests with mixed
    hits and misses (9 of 20 differed before)."""
    from ctxcomp.cache import MemoryStore, SegmentCache
    from ctxcomp.models import load_default

    plain = load_default()
    cached = load_default(cache=SegmentCache(MemoryStore()))
    differ = [
        i
        for i, docs in enumerate(_queries(essays, n=14, seed=1, pool=12))
        if cached.compress(docs, ratio=0.4).text != plain.compress(docs, ratio=0.4).text
    ]
    assert differ == []
    assert cached.cache.stats.hits > 0 and cached.cache.stats.misses > 0
