"""The token classifier's model: loading a Hugging Face token-classification checkpoint
and running its forward pass over token windows. How the forward runs is a backend chosen
by name through :data:`ctxcomp.core.registry.backends` (:mod:`ctxcomp.backends.base`):
"torch", "torch-int8" (:mod:`.eager`), "torch-bf16", "auto" (:mod:`.onednn`), "onnx",
"onnx-int8" (:mod:`.onnx`).

torch and transformers are imported when a model is loaded, never at import.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .._deps import require
from ..core.fingerprint import file_fingerprint
from ..errors import InputError, ModelLoadError
from .base import ModelToRun, prepare, resolve
from .device import pick_device

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl", "longformer")
DEFAULT_WINDOW = 512


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
        backend: str | None,
        keep_label: int,
        batch_tokens: int | None,
        max_chunk_tokens: int | None = None,
        owned: bool = True,
    ) -> None:
        """``owned`` is False for a model the caller passed in: a backend that changes the
        weights' type works on a copy, never on the caller's model."""
        backend = resolve(backend)
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
        run = prepare(
            backend, ModelToRun(model.eval(), fingerprint, self.device, self.pad_id, limit, owned)
        )
        self.backend = run.backend
        self._runner: Any = run.runner
        # how windows are batched so that none's probabilities depend on the others (see
        # predict and ctxcomp.backends.base.Shapes)
        self._shapes = run.shapes
        self.model = run.model
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

    @property
    def runner(self) -> Any:
        """The compiled forward (an ONNX Runtime session or a oneDNN Graph trace), or None
        when the torch model runs eagerly."""
        return self._runner

    def wrap_forward(self, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        """Replace the forward call — the compiled runner, else the torch model's
        ``forward`` — by ``wrap(current)``: instrumentation (timing, memoising) for
        benchmarks and tests, with the same inputs and outputs."""
        if self._runner is not None:
            self._runner = wrap(self._runner)
        else:
            self.model.forward = wrap(self.model.forward)

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
        (tests/model/test_batch_independence.py checks each backend).
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


def _width_grid(limit: int) -> list[int]:
    """Padded lengths for eager torch: 32, 48, 64, 96, 128, ... (steps of 1.5x and 4/3x,
    at most half a window's length of padding), capped by the position limit."""
    out = [32]
    while out[-1] < limit:
        w = out[-1]
        out.append(w * 3 // 2 if w & (w - 1) == 0 else w * 4 // 3)
    return [w for w in out if w < limit] + [limit]


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
    backend: str | None = None,
    keep_label: int = 1,
    batch_tokens: int | None = None,
    local_files_only: bool | None = None,
    max_chunk_tokens: int | None = None,
) -> HFTokenClassifier:
    """Load a token-classification checkpoint by hub id or local path (or wrap a model).
    ``backend`` names a registered backend (None: ``DEFAULT_BACKEND``), checked before the
    weights load."""
    transformers = require("transformers")
    backend = resolve(backend)

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
