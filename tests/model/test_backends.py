"""Inference backends agree with the fp32 torch path on a tiny model; ONNX caching works."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import ctxcomp
from ctxcomp.backends import onnx as onnx_backend

pytest.importorskip("torch")
pytest.importorskip("transformers")

# fraction of the fp32 path's kept words that a backend also keeps (random tiny model:
# quantised backends are tested loosely)
AGREEMENT = {"torch": 1.0, "onnx": 0.99, "torch-bf16": 0.95, "torch-int8": 0.9, "onnx-int8": 0.9}


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    d = tmp_path_factory.mktemp("ctxcomp-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("CTXCOMP_CACHE_DIR", str(d))
    yield d
    mp.undo()


def _kept(comp: ctxcomp.TokenClassifierCompressor, text: str) -> set[tuple[int, int]]:
    r = comp.compress(text, ratio=0.33)
    s = r.scores[0]
    return set(zip(s.starts[s.kept].tolist(), s.ends[s.kept].tolist()))


@pytest.mark.parametrize("backend", ["torch-bf16", "torch-int8", "onnx", "onnx-int8"])
def test_backend_agrees_with_fp32(backend, tiny_bert, essays, onnx_cache):
    model, tok = tiny_bert
    text = essays["copy"][:4000]
    ref = _kept(ctxcomp.TokenClassifierCompressor(model, tok, device="cpu"), text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 emulated on this CPU: slow, exact
        comp = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend=backend)
    got = _kept(comp, text)
    assert comp.model_info["backend"] == backend
    agreement = len(ref & got) / len(ref)
    print(f"{backend}: kept-word agreement with fp32 {agreement:.3f}")
    assert agreement >= AGREEMENT[backend]


def test_onnx_probabilities_match_torch(tiny_xlmr, onnx_cache):
    model, tok = tiny_xlmr
    ref = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu")._model
    fast = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="onnx")._model
    rng = np.random.default_rng(0)
    windows = [rng.integers(5, 500, size=n).astype(np.int64) for n in (7, 130, 40, 1)]
    for a, b in zip(ref.predict(windows), fast.predict(windows)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_onnx_export_is_cached(tiny_bert, onnx_cache, monkeypatch):
    model, tok = tiny_bert
    comp = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="onnx")
    path = onnx_backend.model_dir(comp.model_info["fingerprint"], "onnx") / "model.onnx"
    assert path.is_file() and path.parent.parent == onnx_cache / "onnx"
    assert not [p for p in (onnx_cache / "onnx").iterdir() if p.name.startswith(".")]

    def boom(*_a, **_k):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "_export", boom)
    ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="onnx")


def test_onnx_backend_is_cpu_only(tiny_bert):
    model, tok = tiny_bert
    with pytest.raises(ctxcomp.InputError, match="CPU"):
        ctxcomp.TokenClassifierCompressor(model, tok, device="mps", backend="onnx")


def test_missing_onnxruntime_hint(tiny_bert, monkeypatch):
    model, tok = tiny_bert
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ctxcomp.MissingDependencyError, match=r"pip install 'ctxcomp\[hf\]'"):
        ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="onnx-int8")


def test_import_does_not_load_onnxruntime():
    code = "import sys, ctxcomp, ctxcomp.backends.onnx; print('onnxruntime' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_bf16_backend_says_when_the_cpu_emulates_it(tiny_bert, monkeypatch):
    from ctxcomp.backends import onednn

    model, tok = tiny_bert
    monkeypatch.setattr(onednn, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        comp = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="torch-bf16")
    torch = pytest.importorskip("torch")
    assert next(comp._model.model.parameters()).dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32  # the caller's model: untouched


def test_auto_backend_resolves_by_cpu(tiny_bert, monkeypatch):
    """ "auto" is bf16 on CPUs that compute it natively and fp32 elsewhere; the resolved
    backend is what the config (and so the cache key) records."""
    from ctxcomp.backends import onednn

    model, tok = tiny_bert
    monkeypatch.setattr(onednn, "cpu_has_bf16", lambda: False)
    plain = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="auto")
    assert plain.model_info["backend"] == "torch"
    monkeypatch.setattr(onednn, "cpu_has_bf16", lambda: True)
    fast = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="auto")
    assert fast.model_info["backend"] == "torch-bf16"
    assert plain.config_hash != fast.config_hash


def test_embedded_default_uses_auto_unless_told():
    from ctxcomp.backends.onednn import cpu_has_bf16
    from ctxcomp.models import load_default

    want = "torch-bf16" if cpu_has_bf16() else "torch"
    assert load_default().model_info["backend"] == want
    assert load_default(backend="torch").model_info["backend"] == "torch"
    from ctxcomp.config import PipelineConfig, build

    assert build(PipelineConfig(coarse=False)).model_info["backend"] == want
    assert build(PipelineConfig(coarse=False, backend="torch")).model_info["backend"] == "torch"


def test_bf16_runs_through_onednn_graph_where_native(tiny_bert):
    """On CPUs with native bf16 the bf16 backend runs a oneDNN Graph trace; it serves any
    batch shape and matches eager bf16 within bfloat16 noise."""
    torch = pytest.importorskip("torch")
    from ctxcomp.backends import onednn

    if not onednn.cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16")
    model, tok = tiny_bert
    comp = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="torch-bf16")
    m = comp._model
    assert isinstance(m.runner, onednn.OneDNNGraph)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model: untouched
    rng = np.random.default_rng(0)
    windows = [rng.integers(5, 500, size=n).astype(np.int64) for n in (7, 130, 40, 1, 64)]
    fast = m.predict(windows)
    m._runner = None  # the same bf16 weights, eager
    slow = m.predict(windows)
    for a, b in zip(fast, slow):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=0.05)


def test_onednn_graph_results_do_not_depend_on_history():
    """TorchScript specialises per shape: a shape's first call and shapes past the
    specialisation limit run unfused, with other numerics (a few hundredths of a logit on the
    default model). The runner gives the same probabilities for the same windows whatever
    the process ran before: first call or later, after dozens of other shapes."""
    pytest.importorskip("torch")
    from ctxcomp.backends import onednn
    from ctxcomp.models import load_default

    if not onednn.cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16")
    rng = np.random.default_rng(1)
    windows = [rng.integers(1000, 5000, size=n).astype(np.int64) for n in (300, 90, 200)]

    def fresh():
        m = load_default(backend="torch-bf16")._model
        assert isinstance(m.runner, onednn.OneDNNGraph)
        return m

    first = fresh().predict(windows)
    m = fresh()
    for n in range(20, 420, 12):  # 34 other shapes, 1-3 rows each, before the same windows
        m.predict([rng.integers(1000, 5000, size=n).astype(np.int64) for _ in range(1 + n % 3)])
    later = m.predict(windows)
    again = m.predict(windows)
    for a, b, c in zip(first, later, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)


def test_a_registered_backend_runs_by_name(tiny_bert, essays):
    """A backend registered from outside the library is chosen by name like the built-ins:
    its compiled forward serves every window, and the result records its name."""
    torch = pytest.importorskip("torch")
    from ctxcomp.backends import ModelToRun, PreparedModel
    from ctxcomp.config import PipelineConfig
    from ctxcomp.core import backends

    calls: list[tuple[int, ...]] = []

    def counting(target: ModelToRun) -> PreparedModel:
        eager = backends.create("torch", target)

        def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            calls.append(ids.shape)
            with torch.inference_mode():
                out = eager.model(
                    input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
                )
            return out.logits.float().numpy()

        return PreparedModel("counting-test", eager.model, forward, "grid")

    backends.register("counting-test", counting, replace=True)
    assert PipelineConfig(backend="counting-test").backend == "counting-test"
    model, tok = tiny_bert
    text = essays["copy"][:3000]
    comp = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="counting-test")
    assert comp.model_info["backend"] == "counting-test"
    got = _kept(comp, text)
    assert calls  # the registered forward ran
    ref = ctxcomp.TokenClassifierCompressor(model, tok, device="cpu")  # the default: "torch"
    assert ref.model_info["backend"] == "torch"
    assert got == _kept(ref, text)
    assert comp.config_hash != ref.config_hash  # the backend is part of the cache key


def test_unknown_backend_names_the_registered_ones(tiny_bert, tmp_path):
    from ctxcomp.core import backends

    model, tok = tiny_bert
    with pytest.raises(ctxcomp.InputError, match=r"unknown backend 'nope'; known: auto, .*torch"):
        ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="nope")
    # checked before any weights load: the path does not even exist
    with pytest.raises(ctxcomp.InputError, match="unknown backend 'nope'"):
        ctxcomp.TokenClassifierCompressor(str(tmp_path / "missing"), backend="nope")
    backends.register("broken-test", lambda target: "not a prepared model", replace=True)
    with pytest.raises(ctxcomp.InputError, match="returned str, not a PreparedModel"):
        ctxcomp.TokenClassifierCompressor(model, tok, device="cpu", backend="broken-test")
