"""A FAISS index over segment embeddings, for near-duplicate lookup.

Vectors are L2-normalised, so inner product = cosine similarity. The index type follows the
size: exact ``IndexFlatIP`` below ``exact_below`` vectors, then (``kind="auto"``) IVF-Flat
(k-means coarse quantiser with nlist = 4*sqrt(N), nprobe 64, trained on the vectors present when the
threshold is crossed and retrained whenever the index has grown 4x since), or HNSW
(``kind="hnsw"``: no training; measured lower recall on hard queries and a slower build,
see docs/cache.md). On a machine with CUDA and a GPU build of faiss (``faiss-gpu``), the
index lives on the GPU as an exact flat index (fast enough for millions, and GPU faiss has
no HNSW); every GPU step is guarded and falls back to the CPU with a logged reason.

Positions map to cache keys through ``keys`` (kept beside the index file on disk). One
index serves one namespace; :class:`~ctxcomp.cache.SegmentCache` never searches across.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._deps import require
from .artifact import CacheError

log = logging.getLogger("ctxcomp.cache")

KINDS = ("auto", "flat", "hnsw", "ivf")


def _faiss() -> Any:
    return require("faiss", "faiss")


def gpu_available(faiss: Any | None = None) -> bool:
    faiss = faiss or _faiss()
    try:
        return hasattr(faiss, "StandardGpuResources") and int(faiss.get_num_gpus()) > 0
    except Exception:
        return False


class NearIndex:
    """Nearest-neighbour search over normalised embeddings, with keys per vector."""

    def __init__(
        self,
        dim: int,
        *,
        kind: str = "auto",
        exact_below: int = 50_000,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        nprobe: int = 64,
        use_gpu: bool | str = "auto",
        threads: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise CacheError(f"index kind must be one of {KINDS}, got {kind!r}")
        self.dim = int(dim)
        self.kind = kind
        self.exact_below = int(exact_below)
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nprobe = nprobe
        self.keys: list[str] = []
        self.gpu_note: str | None = None
        faiss = _faiss()
        if threads is not None:
            faiss.omp_set_num_threads(int(threads))
        self._gpu_res: Any = None
        want_gpu = use_gpu is True or (use_gpu == "auto" and gpu_available(faiss))
        if use_gpu is True and not gpu_available(faiss):
            raise CacheError(
                "use_gpu=True but faiss has no GPU support or no CUDA device is visible"
            )
        if want_gpu:
            try:
                self._gpu_res = faiss.StandardGpuResources()
            except Exception as exc:
                self.gpu_note = f"GPU resources unavailable ({exc}); using the CPU index"
                log.warning(self.gpu_note)
                self._gpu_res = None
        self._index = self._to_device(faiss.IndexFlatIP(self.dim))
        self.current = "flat"
        self._trained_for = 0

    # -- device -------------------------------------------------------------------------

    @property
    def on_gpu(self) -> bool:
        return self._gpu_res is not None

    def _to_device(self, index: Any) -> Any:
        if self._gpu_res is None:
            return index
        faiss = _faiss()
        try:
            return faiss.index_cpu_to_gpu(self._gpu_res, 0, index)
        except Exception as exc:
            self.gpu_note = f"moving the index to the GPU failed ({exc}); using the CPU index"
            log.warning(self.gpu_note)
            self._gpu_res = None
            return index

    def _cpu_index(self) -> Any:
        if self._gpu_res is None:
            return self._index
        try:
            return _faiss().index_gpu_to_cpu(self._index)
        except Exception as exc:
            raise CacheError(f"could not copy the GPU index back to the CPU: {exc}") from exc

    # -- build ------------------------------------------------------------------------

    def _target_kind(self, n: int) -> str:
        if self.on_gpu:
            return "flat"
        if self.kind != "auto":
            return self.kind if n >= self.exact_below or self.kind == "flat" else "flat"
        return "flat" if n < self.exact_below else "ivf"

    def _new(self, kind: str, train: np.ndarray | None) -> Any:
        faiss = _faiss()
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if kind == "hnsw":
            idx = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = self.ef_construction
            idx.hnsw.efSearch = self.ef_search
            return idx
        assert train is not None
        nlist = int(max(16, min(65536, 4 * np.sqrt(max(train.shape[0], 1)))))
        quant = faiss.IndexFlatIP(self.dim)
        idx = faiss.IndexIVFFlat(quant, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = train
        if sample.shape[0] > 64 * nlist:
            rng = np.random.default_rng(0)
            sample = sample[rng.choice(sample.shape[0], 64 * nlist, replace=False)]
        idx.train(sample)
        idx.nprobe = min(self.nprobe, nlist)
        idx.make_direct_map()  # keeps vectors reconstructible, for retraining as it grows
        self._trained_for = int(train.shape[0])
        return idx

    def _all_vectors(self) -> np.ndarray:
        n = self._index.ntotal
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._cpu_index().reconstruct_n(0, n), dtype=np.float32)

    def add(self, keys: list[str], vecs: np.ndarray) -> None:
        vecs = _prep(vecs, self.dim)
        if len(keys) != vecs.shape[0]:
            raise CacheError("add: one key per vector")
        if not keys:
            return
        n_after = self._index.ntotal + vecs.shape[0]
        want = self._target_kind(n_after)
        regrow = want == "ivf" == self.current and n_after > 4 * self._trained_for
        if want != self.current or regrow:  # new type, or IVF lists grown 4x: retrain
            allv = np.concatenate((self._all_vectors(), vecs))
            idx = self._new(want, allv)
            _add_blocks(idx, allv)
            self._index = self._to_device(idx)
            self.current = want
        else:
            _add_blocks(self._index, vecs)
        self.keys.extend(keys)

    def search(self, vecs: np.ndarray, k: int = 1) -> tuple[np.ndarray, list[list[str | None]]]:
        """Similarities [n, k] and keys (``None`` where fewer than k vectors exist)."""
        vecs = _prep(vecs, self.dim)
        if self._index.ntotal == 0 or vecs.shape[0] == 0:
            return np.full((vecs.shape[0], k), -1.0, np.float32), [
                [None] * k for _ in range(vecs.shape[0])
            ]
        sims, ids = self._index.search(vecs, k)
        keys = [[self.keys[i] if 0 <= i < len(self.keys) else None for i in row] for row in ids]
        return sims, keys

    def set_search_width(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change how widely searches look (IVF lists probed, HNSW candidates) without
        rebuilding: recall against speed. Applies to the live index and later rebuilds."""
        faiss = _faiss()
        if nprobe is not None:
            self.nprobe = int(nprobe)
            if self.current == "ivf":
                ivf = faiss.extract_index_ivf(self._index)  # IVF runs on the CPU only
                ivf.nprobe = min(self.nprobe, int(ivf.nlist))
        if ef_search is not None:
            self.ef_search = int(ef_search)
            if self.current == "hnsw":
                self._index.hnsw.efSearch = self.ef_search

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def memory_bytes(self) -> int:
        """Bytes of the serialised index (vectors + graph/lists) plus the key table."""
        faiss = _faiss()
        return int(faiss.serialize_index(self._cpu_index()).size) + sum(
            len(k) + 49 for k in self.keys
        )

    # -- persistence ------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (the faiss index) and ``path.keys`` atomically."""
        faiss = _faiss()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        faiss.write_index(self._cpu_index(), str(tmp))
        ktmp = p.with_name(f".{p.name}.keys.{os.getpid()}.tmp")
        ktmp.write_text(f"{self.current}\n" + "\n".join(self.keys), encoding="ascii")
        os.replace(ktmp, p.with_name(p.name + ".keys"))
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike[str], dim: int, **kw: Any) -> NearIndex:
        """Load a saved index; raises :class:`CacheError` if it is missing or inconsistent."""
        faiss = _faiss()
        p = Path(path)
        kp = p.with_name(p.name + ".keys")
        try:
            idx = faiss.read_index(str(p))
            lines = kp.read_text(encoding="ascii").split("\n")
        except (OSError, RuntimeError, UnicodeDecodeError) as exc:
            raise CacheError(f"cannot read index {p}: {exc}") from exc
        current, keys = lines[0], [k for k in lines[1:] if k]
        if idx.d != dim or idx.ntotal != len(keys) or current not in KINDS:
            raise CacheError(f"index {p} does not match its key table; rebuild it")
        self = cls(dim, **kw)
        if current == "hnsw":
            idx.hnsw.efSearch = self.ef_search
        elif current == "ivf":
            ivf = faiss.extract_index_ivf(idx)
            ivf.nprobe = self.nprobe
            self._trained_for = int(idx.ntotal)
        self._index = self._to_device(idx)
        self.current = current
        self.keys = keys
        return self

    @classmethod
    def build(cls, keys: list[str], vecs: np.ndarray, dim: int, **kw: Any) -> NearIndex:
        self = cls(dim, **kw)
        self.add(keys, vecs)
        return self


def _prep(vecs: np.ndarray, dim: int) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vecs, dtype=np.float32))
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != dim:
        raise CacheError(f"expected vectors of dimension {dim}, got shape {v.shape}")
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(n, 1e-12))


def _add_blocks(index: Any, vecs: np.ndarray, block: int = 65536) -> None:
    for i in range(0, vecs.shape[0], block):
        index.add(np.ascontiguousarray(vecs[i : i + block]))
