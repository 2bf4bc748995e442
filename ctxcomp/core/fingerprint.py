"""Digests that say what produced an output: configs, files, loaded models.

One helper per question, used everywhere: results, cache keys and eval rows carry
:func:`config_hash`; any other digest is :func:`digest` (of bytes, text or a stream of
parts); checkpoints on disk are identified by :func:`file_fingerprint` (cheap: size and
ends of large files), weights checked against a published SHA-256 by :func:`file_digest`;
a loaded model (whose embedding space a latent prompt lives in, say) by
:func:`model_fingerprint`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

HEX = 16  # hex digits of every ctxcomp digest (64 bits)


def digest(data: bytes | str | Iterable[bytes | str], n: int = HEX) -> str:
    """SHA-256 hex digest of ``data`` (str as UTF-8; an iterable of parts is hashed as their
    concatenation, streamed), cut to ``n`` hex digits (64: the full digest)."""
    h = hashlib.sha256()
    for part in (data,) if isinstance(data, (bytes, str, bytearray, memoryview)) else data:
        h.update(part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part)
    return h.hexdigest()[:n]


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


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
_FILE_DIGESTS_LOCK = threading.Lock()


def file_digest(path: str | os.PathLike[str]) -> str:
    """Full SHA-256 (64 hex digits) of a file's bytes, read in blocks: for checking weights
    against published digests. Memoised per (path, size, modification time)."""
    p = os.fspath(path)
    st = os.stat(p)
    key = (os.path.abspath(p), st.st_size, int(st.st_mtime_ns))
    with _FILE_DIGESTS_LOCK:
        hit = _FILE_DIGESTS.get(key)
    if hit is not None:
        return hit
    with open(p, "rb") as f:
        d = digest(iter(lambda: f.read(1 << 20), b""), 64)
    with _FILE_DIGESTS_LOCK:
        _FILE_DIGESTS[key] = d
    return d


_MODEL_FP: weakref.WeakKeyDictionary[Any, tuple[int, str]] = weakref.WeakKeyDictionary()
_MODEL_FP_LOCK = threading.Lock()
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}


def model_fingerprint(model: Any) -> str:
    """Digest of a loaded torch model: its class, its config (without path, version and
    dtype entries) and the exact values, shape and dtype of every parameter and buffer.

    Two models with different weights get different fingerprints — cache keys and latent
    prompts rely on it — while the same weights loaded twice, from anywhere, get the same
    one. Memoised per model object until its tensors are changed in place (tracked by
    torch's version counters)."""
    tensors = []
    for attr in ("named_parameters", "named_buffers"):
        if hasattr(model, attr):
            tensors += list(getattr(model, attr)())
    version = sum(int(getattr(t, "_version", 0)) for _, t in tensors)
    with _MODEL_FP_LOCK:
        hit = _MODEL_FP.get(model)
        if hit is not None and hit[0] == version:
            return hit[1]
    h = hashlib.sha256(type(model).__name__.encode())
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_dict"):
        c = {k: v for k, v in cfg.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
        h.update(json.dumps(c, sort_keys=True, default=str).encode())
    for name, t in tensors:
        t = t.detach()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
        if t.is_floating_point() and t.dtype.itemsize < 4:  # bf16 / fp16: exact in float32
            t = t.float()
        h.update(memoryview(t.cpu().contiguous().numpy()).cast("B"))
    fp = h.hexdigest()[:HEX]
    with _MODEL_FP_LOCK, contextlib.suppress(TypeError):  # not weak-referenceable: no memo
        _MODEL_FP[model] = (version, fp)
    return fp
