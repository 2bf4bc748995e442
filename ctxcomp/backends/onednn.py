"""The "torch-bf16" backend (bfloat16 weights and activations) and "auto" (bf16 on CPUs
that compute it natively, else "torch"). The bf16 fast path: the model traced to TorchScript
and run with oneDNN Graph fusion on CPUs that compute bfloat16 natively (AVX512-BF16 or AMX).

torch is passed in or imported when a model is loaded, never at import.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._deps import require
from ..core.registry import backends
from .base import ModelToRun, PreparedModel
from .tracing import eager_attention, quiet_transformers

# the oneDNN runner pads lengths to a multiple of this (a bounded set of traced shapes)
LEN_STEP = 32


class OneDNNGraph:
    """A bf16 model traced to TorchScript and run with oneDNN Graph fusion on the CPU.

    oneDNN fuses each layer's attention (matmul, scale, mask, softmax, matmul) into one
    bf16 kernel, which torch's own CPU attention does not do for small heads: on MiniLM
    (12 heads of 32) the bf16 forward runs ~1.5x faster than eager bf16 with SDPA
    (docs/performance.md). oneDNN fusion is a process-wide TorchScript switch: it is turned on
    only around this model's calls.

    Deterministic whatever ran before: TorchScript specialises the graph per input shape, and
    a shape's first call (the profiling run) computes unfused, as does every shape beyond the
    specialisation limit (12 by default) — a few hundredths of a logit apart from the fused
    kernels, enough to flip a kept word, so the result would depend on what the process had
    compressed before. Inputs run in a bounded set of shapes (length padded to a multiple of
    ``LEN_STEP``, rows in power-of-two blocks of 2 or more: at most 16 x 9 shapes for
    512-token windows), the specialisation limit is raised to cover them around this model's
    calls, and a shape's first call is run twice, the profiling run's output discarded.
    """

    MAX_SHAPES = 256

    def __init__(self, torch: Any, traced: Any, pad_id: int, max_len: int) -> None:
        self._torch = torch
        self._traced = traced
        self._pad_id = pad_id
        self._max_len = max_len
        self._warm: set[tuple[int, int]] = set()

    @classmethod
    def build(cls, torch: Any, model: Any, pad_id: int, max_len: int) -> OneDNNGraph | None:
        """Trace ``model`` (bf16, CPU); None when tracing fails (eager bf16 is used then)."""
        return_dict = model.config.return_dict
        try:
            model.config.return_dict = False
            ids = torch.full((2, 16), 5, dtype=torch.int64)
            # eager attention: the matmul/softmax pattern oneDNN Graph fuses
            with eager_attention(model), quiet_transformers(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with onednn_fusion(torch), torch.no_grad():
                    traced = torch.jit.freeze(
                        torch.jit.trace(model, (ids, torch.ones_like(ids)), check_trace=False)
                    )
            return cls(torch, traced, pad_id, max_len)
        except Exception as exc:  # tracing fails in many ways on exotic models
            warnings.warn(
                f"backend 'torch-bf16': oneDNN Graph tracing failed ({exc}); running eager bf16",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        finally:
            model.config.return_dict = return_dict

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits (float32) of int64 ``ids`` / ``mask`` arrays, as ``OnnxRunner`` gives."""
        torch = self._torch
        b, n = ids.shape
        width = min(-(-n // LEN_STEP) * LEN_STEP, self._max_len)
        if width != n:
            pid = np.full((b, width), self._pad_id, dtype=np.int64)
            pmask = np.zeros((b, width), dtype=np.int64)
            pid[:, :n], pmask[:, :n] = ids, mask
            ids, mask = pid, pmask
        parts = []
        with onednn_fusion(torch), fusion_strategy(torch, [("STATIC", self.MAX_SHAPES)]):
            start = 0
            for rows, padded in row_blocks(b):
                x = torch.from_numpy(ids[start : start + rows])
                m = torch.from_numpy(mask[start : start + rows])
                start += rows
                if padded > rows:  # all-padding rows, masked out, dropped below
                    x = torch.cat((x, x.new_full((padded - rows, width), self._pad_id)))
                    m = torch.cat((m, m.new_zeros((padded - rows, width))))
                logits = self._traced(x, m)[0]
                if (padded, width) not in self._warm:  # that was the profiling run: unfused
                    logits = self._traced(x, m)[0]
                    self._warm.add((padded, width))
                parts.append(logits[:rows, :n].float().numpy())
        return np.asarray(np.concatenate(parts) if len(parts) > 1 else parts[0], dtype=np.float32)


def row_blocks(b: int) -> list[tuple[int, int]]:
    """(rows, padded rows) blocks covering ``b`` rows, every padded size a power of two of at
    least 2: the rest is padded up when that adds at most a quarter (31 -> 32) or it is under
    4 rows (1 -> 2, 3 -> 4), else split (11 -> 8+4). oneDNN computes a one-row block with
    other rounding than a block of two or more, which agree with each other."""
    out = []
    while b:
        up = max(2, 1 << (b - 1).bit_length())
        if up - b <= b // 4 or b < 4:
            out.append((b, up))
            break
        k = 1 << (b.bit_length() - 1)
        out.append((k, k))
        b -= k
    return out


@contextlib.contextmanager
def fusion_strategy(torch: Any, strategy: list[tuple[str, int]]) -> Iterator[None]:
    def swap(to: list[tuple[str, int]]) -> list[tuple[str, int]]:
        with warnings.catch_warnings():  # TorchScript's setters are deprecated, still served
            warnings.simplefilter("ignore", DeprecationWarning)
            return list(torch.jit.set_fusion_strategy(to))

    prev = swap(strategy)
    try:
        yield
    finally:
        swap(prev)


@contextlib.contextmanager
def onednn_fusion(torch: Any) -> Iterator[None]:
    prev = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(prev)


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (oneDNN: AVX512-BF16 or AMX)."""
    torch = require("torch")
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def bf16(target: ModelToRun) -> PreparedModel:
    """Backend "torch-bf16": bf16 weights (a copy of a caller's model); on a CPU with
    native bf16 the forward runs as a oneDNN Graph trace (eager bf16 when tracing fails,
    and elsewhere)."""
    torch = require("torch")
    native = target.device == "cpu" and cpu_has_bf16()
    if target.device == "cpu" and not native:
        warnings.warn(
            "backend 'torch-bf16': this CPU has no native bfloat16 (AVX512-BF16 or AMX), "
            "so it is emulated and slower than 'torch'; use backend='onnx' here",
            RuntimeWarning,
            stacklevel=5,
        )
    model = target.model if target.owned else copy.deepcopy(target.model)
    model = model.to(device=target.device, dtype=torch.bfloat16)
    runner = OneDNNGraph.build(torch, model, target.pad_id, target.max_len) if native else None
    return PreparedModel("torch-bf16", model, runner, "free" if runner is not None else "grid")


def auto(target: ModelToRun) -> PreparedModel:
    """Backend "auto": "torch-bf16" where the CPU computes bfloat16 natively, else "torch"
    (fp32; fp16 on CUDA). The backend it resolves to is what the result records."""
    native = target.device == "cpu" and cpu_has_bf16()
    out: PreparedModel = backends.create("torch-bf16" if native else "torch", target)
    return out
