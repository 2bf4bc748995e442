"""Digests that say what produced an output: configs, files, loaded models.

One helper per question, used everywhere: results, cache keys and eval rows carry
:func:`config_hash`; checkpoints on disk are identified by :func:`file_fingerprint`; a
loaded model (whose embedding space a latent prompt lives in, say) by
:func:`model_fingerprint`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

HEX = 16  # hex digits of every ctxcomp digest (64 bits)


def digest(data: bytes | str, n: int = HEX) -> str:
    """SHA-256 hex digest of ``data`` (str as UTF-8), cut to ``n`` hex digits."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:n]


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable digest of a JSON-serialisable mapping (keys sorted; other values by ``str``)."""
    return digest(json.dumps(dict(config), sort_keys=True, default=str))


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """Cheap, stable digest of a local file or checkpoint directory: small files in full,
    large ones (weights) by size plus their first and last MiB. Hidden files, ``*.md`` and
    ``*.lock`` are skipped (they do not change outputs)."""
    root = os.fspath(path)
    h = hashlib.sha256()
    if os.path.isfile(root):
        _hash_file(h, root, os.path.basename(root))
        return h.hexdigest()[:HEX]
    for d, _dirs, files in sorted(os.walk(root)):
        for name in sorted(files):
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            if rel.startswith(".") or name.endswith((".md", ".lock")):
                continue
            _hash_file(h, p, rel)
    return h.hexdigest()[:HEX]


def _hash_file(h: Any, p: str, rel: str) -> None:
    size = os.path.getsize(p)
    h.update(f"{rel}:{size}\n".encode())
    with open(p, "rb") as f:
        if size <= 4 << 20:
            h.update(f.read())
        else:
            h.update(f.read(1 << 20))
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())


_MODEL_FP: weakref.WeakKeyDictionary[Any, tuple[int, str]] = weakref.WeakKeyDictionary()
_MODEL_FP_LOCK = threading.Lock()
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}
_SAMPLE = 4096  # elements read from each parameter tensor


def model_fingerprint(model: Any) -> str:
    """Digest of a loaded torch model: its class, its config (without path, version and
    dtype entries) and a strided sample of every parameter's values and shape.

    Two models with different weights get different fingerprints (the sample covers every
    tensor), while the same weights loaded twice, from anywhere, get the same one. Memoised
    per model object until its parameters are changed in place (tracked by torch's version
    counters)."""
    params = list(model.named_parameters()) if hasattr(model, "named_parameters") else []
    version = sum(int(getattr(p, "_version", 0)) for _, p in params)
    with _MODEL_FP_LOCK:
        hit = _MODEL_FP.get(model)
        if hit is not None and hit[0] == version:
            return hit[1]
    h = hashlib.sha256(type(model).__name__.encode())
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_dict"):
        c = {k: v for k, v in cfg.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
        h.update(json.dumps(c, sort_keys=True, default=str).encode())
    for name, p in params:
        t = p.detach().reshape(-1)
        step = max(1, t.numel() // _SAMPLE)
        sample = t[::step][:_SAMPLE].float().cpu().numpy()
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype}\n".encode())
        h.update(sample.tobytes())
    fp = h.hexdigest()[:HEX]
    with _MODEL_FP_LOCK, contextlib.suppress(TypeError):  # not weak-referenceable: no memo
        _MODEL_FP[model] = (version, fp)
    return fp
