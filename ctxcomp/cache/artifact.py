"""Self-verifying cache values: bytes + a kind tag + array metadata, checked on every read.

An encoded artifact is::

    b"CXA1" | u32 header length | header JSON | payload | 16-byte BLAKE2b digest

The header names the kind (``"tc.window"``, ``"embedding"``, later ``"latent"``...), and
each array's dtype, shape and byte length. The digest covers everything before it, so a
torn, truncated or bit-flipped value fails :func:`decode` with :class:`CorruptEntryError`
and is never handed to a compressor; decoded values are then checked (finite, and each
kind's own rules, :func:`register_validator`), so a well-formed but poisoned value is not
served either.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CtxcompError

MAGIC = b"CXA1"
_DIGEST = 16
_ALLOWED_DTYPES = {"<f4", "<f2", "<f8", "<i4", "<i8", "|u1", "|i1", "<u2", "<u4", "|b1"}


class CacheError(CtxcompError):
    """A problem with the segment cache."""


class CorruptEntryError(CacheError):
    """A cached value failed its length or checksum check (torn, truncated or corrupted)."""


class CacheUnavailableError(CacheError):
    """The cache backend cannot be reached (e.g. Redis is down) and no fallback was chosen."""


@dataclass(frozen=True)
class Artifact:
    """One cached result: named arrays plus small JSON metadata, under a ``kind`` tag."""

    kind: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return encode(self)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


def _digest(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST).digest()


def encode(art: Artifact) -> bytes:
    specs = []
    chunks = []
    for name, a in art.arrays.items():
        a = np.ascontiguousarray(a)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dt, copy=False)
        if dt.str not in _ALLOWED_DTYPES:
            raise CacheError(f"artifact array {name!r}: dtype {dt.str} cannot be cached")
        b = a.tobytes()
        specs.append({"name": name, "dtype": dt.str, "shape": list(a.shape), "nbytes": len(b)})
        chunks.append(b)
    header = json.dumps(
        {"kind": art.kind, "arrays": specs, "meta": art.meta}, separators=(",", ":")
    ).encode()
    body = b"".join([MAGIC, struct.pack("<I", len(header)), header, *chunks])
    return body + _digest(body)


def decode(data: bytes | bytearray | memoryview, *, kind: str | None = None) -> Artifact:
    """Verify and decode; raises :class:`CorruptEntryError` on any mismatch."""
    mv = memoryview(data)
    n = len(mv)
    if n < len(MAGIC) + 4 + _DIGEST or bytes(mv[:4]) != MAGIC:
        raise CorruptEntryError("cache entry: bad magic or too short")
    body, dig = mv[: n - _DIGEST], bytes(mv[n - _DIGEST :])
    if _digest(body) != dig:
        raise CorruptEntryError("cache entry: checksum mismatch")
    (hlen,) = struct.unpack("<I", bytes(mv[4:8]))
    if 8 + hlen > len(body):
        raise CorruptEntryError("cache entry: header length out of range")
    try:
        header = json.loads(bytes(mv[8 : 8 + hlen]))
    except ValueError as exc:
        raise CorruptEntryError(f"cache entry: unreadable header ({exc})") from exc
    if kind is not None and header.get("kind") != kind:
        raise CorruptEntryError(f"cache entry: kind {header.get('kind')!r}, expected {kind!r}")
    pos = 8 + hlen
    arrays: dict[str, np.ndarray] = {}
    for spec in header.get("arrays", []):
        dt = np.dtype(spec["dtype"])
        shape = tuple(int(x) for x in spec["shape"])
        nb = int(spec["nbytes"])
        if (
            spec["dtype"] not in _ALLOWED_DTYPES
            or nb != int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        ):
            raise CorruptEntryError("cache entry: array size does not match its shape")
        if pos + nb > len(body):
            raise CorruptEntryError("cache entry: payload shorter than its header says")
        arrays[spec["name"]] = np.frombuffer(body[pos : pos + nb], dtype=dt).reshape(shape).copy()
        pos += nb
    if pos != len(body):
        raise CorruptEntryError("cache entry: payload length does not match its header")
    art = Artifact(kind=str(header["kind"]), arrays=arrays, meta=dict(header.get("meta") or {}))
    check_values(art)
    return art


# -- values -------------------------------------------------------------------------------
# A checksum proves a value is what was written, not that it is sane: a writer with access
# to the store (or a bug) can store NaN, inf or 1e30 with a valid checksum. Every decoded
# artifact is checked: floating arrays finite, then the rules its kind registered.

Validator = Callable[[Artifact], "str | None"]
_VALIDATORS: dict[str, Validator] = {}


def register_validator(kind: str, fn: Validator) -> None:
    """Check every decoded artifact of ``kind`` with ``fn`` (returns a problem or None)."""
    _VALIDATORS[kind] = fn


def check_values(art: Artifact) -> None:
    """:class:`CorruptEntryError` unless ``art``'s values are finite and fit its kind."""
    for name, a in art.arrays.items():
        if a.dtype.kind == "f" and not bool(np.isfinite(a).all()):
            raise CorruptEntryError(f"cache entry {art.kind}: {name!r} holds NaN or infinity")
    fn = _VALIDATORS.get(art.kind)
    problem = fn(art) if fn is not None else None
    if problem:
        raise CorruptEntryError(f"cache entry {art.kind}: {problem}")


def probabilities(a: np.ndarray | None, name: str) -> str | None:
    """A problem if ``a`` is not a 1-D float array of values in [0, 1]."""
    if a is None or a.ndim != 1 or a.dtype.kind != "f":
        return f"{name!r} must be a 1-D float array"
    if a.size and (float(a.min()) < 0.0 or float(a.max()) > 1.0):
        return f"{name!r} holds values outside [0, 1]"
    return None


def unit_vector(a: np.ndarray | None, name: str, tol: float = 1e-3) -> str | None:
    """A problem if ``a`` is not a 1-D float vector of L2 norm 1 (within ``tol``)."""
    if a is None or a.ndim != 1 or a.dtype.kind != "f" or a.size == 0:
        return f"{name!r} must be a non-empty 1-D float vector"
    n = float(np.linalg.norm(a.astype(np.float64)))
    if abs(n - 1.0) > tol:
        return f"{name!r} must have norm 1, has {n:.6g}"
    return None
