"""The ONNX Runtime backends of the token classifier ("onnx" and "onnx-int8").

On first use the torch model is exported once (eager attention, so that ONNX Runtime's
BERT optimizer can fuse whole attention blocks), optimised with ONNX Runtime's transformer
fusions and, for "onnx-int8", dynamically quantised (int8 weights, per-channel; int8
activations computed at run time). The result is cached under the user cache directory,
keyed by the model fingerprint, the variant and the onnxruntime version, and reused.

onnxruntime is imported only when an ONNX backend is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._deps import require
from ..errors import ModelLoadError
from .base import ModelToRun, PreparedModel, require_cpu
from .tracing import eager_attention

FORMAT_VERSION = 1  # bump when the export/optimise/quantise recipe changes
VARIANTS = ("onnx", "onnx-int8")
_FUSABLE = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "deberta-v2": "bert",
}
_EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf files are limited to 2 GB


def cache_dir() -> Path:
    """``$CTXCOMP_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/ctxcomp/onnx``, else ``~/.cache/ctxcomp/onnx``."""
    root = os.environ.get("CTXCOMP_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "ctxcomp" / "onnx"


def model_dir(fingerprint: str, variant: str) -> Path:
    ort = require("onnxruntime")
    key = hashlib.sha256(
        f"{fingerprint}|{variant}|{ort.__version__}|{FORMAT_VERSION}".encode()
    ).hexdigest()[:20]
    return cache_dir() / f"{key}-{variant}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporter/optimiser chatter (warnings, logging) is not the user's business."""
    loggers = [
        logging.getLogger(n)
        for n in ("onnxruntime", "onnxruntime.transformers", "transformers", "root", "")
    ]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def _export(model: Any, out: Path) -> None:
    """Trace ``model`` to ONNX with dynamic batch and sequence axes, eager attention."""
    torch = require("torch")
    with eager_attention(model):
        ids = torch.full((2, 16), 5, dtype=torch.int64)
        mask = torch.ones_like(ids)
        dyn = {0: "batch", 1: "sequence"}
        big = sum(p.numel() * p.element_size() for p in model.parameters()) > _EXTERNAL_DATA_BYTES

        module: Any = torch.nn.Module

        class _Logits(module):  # the logits tensor alone, named in the graph
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

        with _quiet(), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                _Logits(model).eval(),
                (ids, mask),
                str(out),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "logits": dyn},
                opset_version=17,
                do_constant_folding=True,
                dynamo=False,
                **({"external_data": True} if big else {}),
            )


def _optimise(src: Path, out: Path, config: Any) -> None:
    """ONNX Runtime transformer fusions (Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm)."""
    from onnxruntime.transformers import optimizer

    kind = _FUSABLE.get(getattr(config, "model_type", ""))
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    if kind is None or not heads or not hidden:
        shutil.copyfile(src, out)
        return
    with _quiet():
        opt = optimizer.optimize_model(
            str(src), model_type=kind, num_heads=heads, hidden_size=hidden, opt_level=0
        )
        opt.save_model_to_file(str(out), use_external_data_format=_is_big(src))


def _quantise(src: Path, out: Path) -> None:
    """Dynamic int8: weights of every MatMul/Attention quantised per channel."""
    onnx = require("onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(src),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            use_external_data_format=_is_big(src),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def _is_big(path: Path) -> bool:
    return (
        sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file()) > _EXTERNAL_DATA_BYTES
    )


def ensure_model(model: Any, fingerprint: str, variant: str) -> Path:
    """Path of the cached ONNX file for ``model`` (exported, optimised, quantised on first use).

    Built in a private temporary directory next to the cache entry and moved into place with
    one rename, so concurrent processes never see a half-written model.
    """
    if variant not in VARIANTS:
        raise ValueError(variant)
    require("onnx")
    final = model_dir(fingerprint, variant)
    target = final / "model.onnx"
    if target.exists():
        return target
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        raw_dir, opt_dir, fin_dir = work / "raw", work / "opt", work / "final"
        for d in (raw_dir, opt_dir, fin_dir):
            d.mkdir()
        try:
            _export(model, raw_dir / "model.onnx")
            if variant == "onnx":
                _optimise(raw_dir / "model.onnx", fin_dir / "model.onnx", model.config)
            else:
                _optimise(raw_dir / "model.onnx", opt_dir / "model.onnx", model.config)
                _quantise(opt_dir / "model.onnx", fin_dir / "model.onnx")
        except Exception as exc:  # exporter/optimiser failures have many types
            raise ModelLoadError(f"could not build the {variant!r} ONNX model: {exc}") from exc
        try:
            os.replace(fin_dir, final)
        except OSError:
            if not target.exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class OnnxRunner:
    """An ONNX Runtime session that maps (input_ids, attention_mask) int64 arrays to logits."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = require("onnxruntime")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if threads is None:
            torch = require("torch")
            threads = int(torch.get_num_threads())
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a corrupt cache entry: say where it is
            raise ModelLoadError(
                f"could not load the ONNX model {path}: {exc}; delete it to rebuild"
            ) from exc
        self._inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask}
        (logits,) = self.session.run(
            ["logits"], {k: v for k, v in feeds.items() if k in self._inputs}
        )
        return np.asarray(logits, dtype=np.float32)


def load_runner(
    model: Any, fingerprint: str, variant: str, threads: int | None = None
) -> OnnxRunner:
    require("onnxruntime")
    return OnnxRunner(ensure_model(model, fingerprint, variant), threads)


def _prepare(variant: str, target: ModelToRun) -> PreparedModel:
    require_cpu(variant, target)
    torch = require("torch")
    model = target.model.to(device="cpu", dtype=torch.float32)
    runner = load_runner(model, target.fingerprint, variant)
    # fp32 gives the same numbers at any padded length; int8 quantises activations per call
    return PreparedModel(variant, model, runner, "free" if variant == "onnx" else "alone")


def fp32(target: ModelToRun) -> PreparedModel:
    """Backend "onnx": ONNX Runtime with fused attention (CPU)."""
    return _prepare("onnx", target)


def int8(target: ModelToRun) -> PreparedModel:
    """Backend "onnx-int8": ONNX Runtime, dynamically quantised to int8 (lossy; CPU)."""
    return _prepare("onnx-int8", target)
