"""Loading Hugging Face token classifiers and running their forward pass.

Only this module imports torch and transformers, and only when a model is loaded.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._deps import require
from ..errors import InputError, ModelLoadError

BACKENDS = ("torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8", "auto")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl", "longformer")
DEFAULT_WINDOW = 512
# the oneDNN runner pads lengths to a multiple of this (a bounded set of traced shapes)
LEN_STEP = 32


def pick_device(device: str) -> str:
    """``"auto"`` means CUDA when present, then Apple MPS, else CPU."""
    torch = require("torch")
    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class HFTokenClassifier:
    """A loaded encoder + tokenizer that turns token windows into keep probabilities."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        fingerprint: str,
        source: str,
        device: str,
        backend: str,
        keep_label: int,
        batch_tokens: int | None,
        max_chunk_tokens: int | None = None,
        owned: bool = True,
    ) -> None:
        """``owned`` is False for a model the caller passed in: a backend that changes the
        weights' type works on a copy, never on the caller's model."""
        torch = require("torch")
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
        n_labels = int(getattr(model.config, "num_labels", 2))
        if not 0 <= keep_label < n_labels:
            raise InputError(
                f"keep_label {keep_label} is not a label of this model ({n_labels} labels)"
            )
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(
                f"{source}: ctxcomp needs a fast (Rust) tokenizer for character offsets; "
                "install 'tokenizers' or convert the tokenizer"
            )
        self.source = source
        self.fingerprint = fingerprint
        self.keep_label = keep_label
        self.device = pick_device(device)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        limit = _position_limit(model.config, tokenizer)
        native_bf16 = backend in ("auto", "torch-bf16") and self.device == "cpu" and cpu_has_bf16()
        if backend == "auto":  # bf16 where the CPU computes it natively; fp16 on CUDA; else fp32
            backend = "torch-bf16" if native_bf16 else "torch"
        self.backend = backend
        model = model.eval()
        self._runner: Any = None
        if backend not in ("torch", "torch-bf16") and self.device != "cpu":
            raise InputError(f"backend {backend!r} runs on the CPU; use device='cpu'")
        if backend == "torch-bf16" and self.device == "cpu" and not native_bf16:
            warnings.warn(
                "backend 'torch-bf16': this CPU has no native bfloat16 (AVX512-BF16 or AMX), "
                "so it is emulated and slower than 'torch'; use backend='onnx' here",
                RuntimeWarning,
                stacklevel=3,
            )
        if backend == "torch-int8":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        elif backend in ("onnx", "onnx-int8"):
            from ._onnx import load_runner  # onnxruntime imported here, not at import

            model = model.to(device="cpu", dtype=torch.float32)
            self._runner = load_runner(model, fingerprint, backend)
        elif backend == "torch-bf16":
            if not owned:
                model = copy.deepcopy(model)
            model = model.to(device=self.device, dtype=torch.bfloat16)
            if native_bf16:
                self._runner = _OneDNNGraph.build(torch, model, self.pad_id, limit)
        else:
            dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
            model = model.to(device=self.device, dtype=dtype)
        self.model = model
        self.hf_tokenizer = tokenizer
        bt = tokenizer.backend_tokenizer
        bt = type(bt).from_str(bt.to_str())  # private copy: no truncation, no padding
        bt.no_truncation()
        bt.no_padding()
        self.backend_tokenizer = bt
        with_sp = list(tokenizer("a b", add_special_tokens=True)["input_ids"])
        without = list(tokenizer("a b", add_special_tokens=False)["input_ids"])
        self.prefix, self.suffix = _split_specials(with_sp, without)
        window = (
            min(limit, DEFAULT_WINDOW)
            if max_chunk_tokens is None
            else max_chunk_tokens + len(self.prefix) + len(self.suffix)
        )
        if window > limit:
            raise InputError(f"max_chunk_tokens too large for the model's {limit} positions")
        self.max_chunk_tokens = window - len(self.prefix) - len(self.suffix)
        # How windows are batched so that none's probabilities depend on the others (see
        # predict): dynamic int8 quantises activations with one scale per call, so each
        # window runs alone; eager torch rounds differently at other padded lengths, so each
        # runs padded to a fixed grid length above its own; ONNX fp32 and the oneDNN runner
        # give the same numbers at any padded length, so windows of any lengths share.
        if backend in ("torch-int8", "onnx-int8"):
            self._shapes = "alone"
        elif self._runner is not None:
            self._shapes = "free"
        else:
            self._shapes = "grid"
        self._grid = _width_grid(limit)
        if batch_tokens is None:
            # CPU torch runs ~10% faster per window in batches of 32 x 512 than of 8 x 512
            # (MiniLM, 2 threads; docs/performance.md); ONNX Runtime is fine with 8.
            if self.device.startswith("cuda"):
                batch_tokens = 32768
            else:
                batch_tokens = 16384  # measured: larger CPU batches are faster for torch and ORT
        self.batch_tokens = max(int(batch_tokens), window)

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "device": self.device,
            "backend": self.backend,
            "window": self.max_chunk_tokens,
            "architecture": type(self.model).__name__,
        }

    def width(self, n: int) -> int:
        """The padded length a window of ``n`` tokens (special tokens included) runs at:
        a grid length for eager torch, else its own (a batch runs at its longest)."""
        if self._shapes != "grid":
            return n
        return self._grid[min(bisect.bisect_left(self._grid, n), len(self._grid) - 1)]

    def predict(
        self, windows: list[np.ndarray], progress: Callable[[int, int], None] | None = None
    ) -> list[np.ndarray]:
        """Keep probability of every token of every window (special tokens stripped).

        A window's probabilities depend on the window alone, never on the windows that share
        its batch (so cached and freshly scored windows agree exactly). Eager torch: each
        window runs padded to the grid length above its own (``width``: 32, 48, 64, 96, ...,
        the position limit), in batches of windows of that length only. ONNX fp32 and the
        oneDNN bf16 runner: results do not depend on the padded length, so windows of any
        lengths share a batch (sorted by length); the oneDNN runner never runs a one-row
        block (its kernels round differently there). int8: each window alone, unpadded.
        Per-row results do not depend on the number of rows otherwise
        (tests/test_batch_independence.py checks each backend).
        """
        torch = require("torch")
        pre, suf = np.asarray(self.prefix, np.int64), np.asarray(self.suffix, np.int64)
        widths = [self.width(w.size + pre.size + suf.size) for w in windows]
        order = sorted(range(len(windows)), key=lambda i: (-windows[i].size, i))
        any_width = self._shapes == "free"
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(windows)
        total = int(sum(w.size for w in windows))
        done = 0
        i = 0
        with torch.inference_mode():
            while i < len(order):
                width = widths[order[i]]
                rows = 1 if self._shapes == "alone" else max(1, self.batch_tokens // max(width, 1))
                j = i
                while j < len(order) and j - i < rows and (any_width or widths[order[j]] == width):
                    j += 1
                batch = order[i:j]
                i = j
                ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
                mask = np.zeros((len(batch), width), dtype=np.int64)
                for r, wi in enumerate(batch):
                    row = np.concatenate((pre, windows[wi], suf))
                    ids[r, : row.size] = row
                    mask[r, : row.size] = 1
                if self._runner is not None:  # ONNX Runtime or a oneDNN Graph trace
                    p = _keep_prob(self._runner(ids, mask), self.keep_label)
                else:
                    logits = self.model(
                        input_ids=torch.from_numpy(ids).to(self.device),
                        attention_mask=torch.from_numpy(mask).to(self.device),
                    ).logits
                    p = _keep_prob_torch(torch, logits, self.keep_label).cpu().numpy()
                for r, wi in enumerate(batch):
                    n = windows[wi].size
                    out[wi] = p[r, pre.size : pre.size + n].astype(np.float32)
                    done += n
                if progress is not None:
                    progress(done, total)
        return out


class _OneDNNGraph:
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
    def build(cls, torch: Any, model: Any, pad_id: int, max_len: int) -> _OneDNNGraph | None:
        """Trace ``model`` (bf16, CPU); None when tracing fails (eager bf16 is used then)."""
        return_dict = model.config.return_dict
        try:
            model.config.return_dict = False
            ids = torch.full((2, 16), 5, dtype=torch.int64)
            # eager attention: the matmul/softmax pattern oneDNN Graph fuses
            with eager_attention(model), quiet_transformers(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _onednn_fusion(torch), torch.no_grad():
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
        with _onednn_fusion(torch), _fusion_strategy(torch, [("STATIC", self.MAX_SHAPES)]):
            start = 0
            for rows, padded in _row_blocks(b):
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


def _width_grid(limit: int) -> list[int]:
    """Padded lengths for eager torch: 32, 48, 64, 96, 128, ... (steps of 1.5x and 4/3x,
    at most half a window's length of padding), capped by the position limit."""
    out = [32]
    while out[-1] < limit:
        w = out[-1]
        out.append(w * 3 // 2 if w & (w - 1) == 0 else w * 4 // 3)
    return [w for w in out if w < limit] + [limit]


def _row_blocks(b: int) -> list[tuple[int, int]]:
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
def eager_attention(model: Any) -> Iterator[None]:
    """``model`` with eager (matmul + softmax) attention inside the block, its own outside:
    tracers (ONNX export, TorchScript) see the pattern that fusers recognise, where SDPA is
    one opaque op. Models that cannot switch are left as they are."""
    old = getattr(model.config, "_attn_implementation", None)
    switched = False
    if old not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, TypeError, AttributeError):
            switched = False
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(old)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' logging at error level: tracers probe every attribute of every module,
    and properties such as ``loss_function`` of a headless submodule log a warning meant for
    training code."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


@contextlib.contextmanager
def _fusion_strategy(torch: Any, strategy: list[tuple[str, int]]) -> Iterator[None]:
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
def _onednn_fusion(torch: Any) -> Iterator[None]:
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


def _keep_prob_torch(torch: Any, logits: Any, keep_label: int) -> Any:
    """Softmax probability of ``keep_label``; for two labels the equal sigmoid of the logit
    difference (a softmax over a last axis of size 2 is several times slower on CPU)."""
    logits = logits.float()
    if logits.shape[-1] == 2:
        return torch.sigmoid(logits[..., keep_label] - logits[..., 1 - keep_label])
    return torch.softmax(logits, dim=-1)[..., keep_label]


def _keep_prob(logits: np.ndarray, keep_label: int) -> np.ndarray:
    """Softmax probability of ``keep_label`` over the last axis (numpy, float32)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e[..., keep_label] / e.sum(axis=-1)


def _split_specials(with_sp: list[int], without: list[int]) -> tuple[list[int], list[int]]:
    n = len(without)
    for i in range(len(with_sp) - n + 1):
        if with_sp[i : i + n] == without:
            return with_sp[:i], with_sp[i + n :]
    raise ModelLoadError("cannot locate the tokenizer's special tokens around a probe text")


def _position_limit(config: Any, tokenizer: Any) -> int:
    limit = int(getattr(config, "max_position_embeddings", DEFAULT_WINDOW) or DEFAULT_WINDOW)
    if getattr(config, "model_type", "") in _ROBERTA_LIKE:
        limit -= (
            int(getattr(config, "pad_token_id", 1) or 0) + 1
        )  # positions start after padding_idx
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 1_000_000:
        limit = min(limit, tml)
    return limit


def state_fingerprint(model: Any) -> str:
    """Digest of an in-memory model's weights and config."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_token_classifier(
    model: Any,
    tokenizer: Any = None,
    *,
    revision: str | None = None,
    device: str = "auto",
    backend: str = "torch",
    keep_label: int = 1,
    batch_tokens: int | None = None,
    local_files_only: bool | None = None,
    max_chunk_tokens: int | None = None,
) -> HFTokenClassifier:
    """Load a token-classification checkpoint by hub id or local path (or wrap a model)."""
    transformers = require("transformers")
    from .token_classifier import file_fingerprint

    if isinstance(model, (str, os.PathLike)):
        src = os.fspath(model)
        path = os.path.expanduser(src)
        is_dir = os.path.isdir(path)
        if not is_dir:
            if os.path.exists(path):
                raise ModelLoadError(f"model path {src!r} is a file; give the checkpoint directory")
            if not _HUB_ID.match(src):
                raise ModelLoadError(f"model path {src!r} does not exist (and is not a hub id)")
        kw: dict[str, Any] = {"revision": revision}
        if local_files_only is not None:
            kw["local_files_only"] = local_files_only
        try:
            tok = tokenizer or transformers.AutoTokenizer.from_pretrained(
                path if is_dir else src, **kw
            )
            mdl = transformers.AutoModelForTokenClassification.from_pretrained(
                path if is_dir else src, **kw
            )
        except (OSError, ValueError) as exc:
            hint = (
                ""
                if is_dir
                else " If you are offline, download the model first or pass a local path."
            )
            raise ModelLoadError(
                f"could not load token-classification model {src!r}: {exc}.{hint}"
            ) from exc
        if is_dir:
            fp = file_fingerprint(path)
        else:
            commit = getattr(mdl.config, "_commit_hash", None) or revision or "main"
            fp = f"{src}@{commit}"
        source = src
        owned = True
    else:
        if tokenizer is None:
            raise InputError("pass tokenizer=... together with an already loaded model")
        mdl, tok = model, tokenizer
        owned = False
        fp = state_fingerprint(mdl)
        source = getattr(mdl.config, "_name_or_path", "") or type(mdl).__name__
    return HFTokenClassifier(
        mdl,
        tok,
        fingerprint=fp,
        source=source,
        device=device,
        backend=backend,
        keep_label=keep_label,
        batch_tokens=batch_tokens,
        max_chunk_tokens=max_chunk_tokens,
        owned=owned,
    )
