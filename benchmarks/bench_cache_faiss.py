"""FAISS near-duplicate lookup on the CPU at 100k and 1M segments (384-d).

Vectors: synthetic unit vectors shaped like sentence embeddings (a mixture of N/100
topic clusters plus per-segment noise), since embedding a million real segments with
MiniLM is out of reach on 2 CPU cores. Queries: near-duplicates of stored segments (the
use case: a stored vector plus small noise) and unrelated in-distribution vectors.
Ground truth: exact search (IndexFlatIP). Latency: one query per call on one thread (as
the cache looks up segments), p50/p99 over ``--queries`` calls, as wall time and as the
thread's CPU time (which leaves out time the process spent descheduled on a busy machine). Memory per segment: serialised index bytes
/ N, plus the key table (32-hex-char keys).

    python benchmarks/bench_cache_faiss.py --sizes 100000 1000000 --kinds ivf
    python benchmarks/bench_cache_faiss.py --sizes 1000000 --kinds ivf --sweep 16 32 64 128 256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def data(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_c = max(16, n // 100)
    centers = rng.standard_normal((n_c, dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        out[i : i + m] = centers[rng.integers(0, n_c, m)] + 0.6 * rng.standard_normal(
            (m, dim), dtype=np.float32
        )
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="+", default=["hnsw", "ivf"])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threshold", type=float, default=0.9, help="near-duplicate similarity cut")
    ap.add_argument("--ef", type=int, default=64, help="HNSW efSearch")
    ap.add_argument("--nprobe", type=int, default=64, help="IVF nprobe")
    ap.add_argument(
        "--sweep", type=int, nargs="*", default=[], help="IVF: also report these nprobe values"
    )
    args = ap.parse_args()

    import faiss

    from ctxcomp.cache import NearIndex

    threads = faiss.omp_get_max_threads()
    print(
        f"faiss {faiss.__version__}, {threads} threads (build), 1 thread (search), dim {args.dim}"
    )
    for n in args.sizes:
        x = data(n, args.dim)
        rng = np.random.default_rng(1)
        half = args.queries // 2
        src = rng.choice(n, half, replace=False)
        near = x[src] + 0.02 * rng.standard_normal((half, args.dim), dtype=np.float32)
        other = data(half, args.dim, seed=99)  # same distribution, not stored
        q = np.concatenate([near, other])
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        exact = faiss.IndexFlatIP(args.dim)
        exact.add(x)
        t = time.perf_counter()
        tsim, truth = exact.search(q, 1)
        hit = tsim[:, 0] >= args.threshold  # queries that would be a near-duplicate hit
        t_exact = (time.perf_counter() - t) / q.shape[0]
        del exact
        keys = [f"{i:032x}" for i in range(n)]
        for kind in args.kinds:
            t = time.perf_counter()
            idx = NearIndex(
                args.dim, kind=kind, exact_below=50_000, ef_search=args.ef, nprobe=args.nprobe
            )
            idx.add(keys, x)
            build = time.perf_counter() - t
            lat, cpu = [], []
            found = np.empty(q.shape[0], np.int64)
            faiss.omp_set_num_threads(1)  # one lookup = one query on one core
            for i in range(q.shape[0]):
                t, c = time.perf_counter(), time.thread_time()
                _, ks = idx.search(q[i : i + 1], 1)
                cpu.append(time.thread_time() - c)
                lat.append(time.perf_counter() - t)
                found[i] = int(ks[0][0], 16) if ks[0][0] is not None else -1
            faiss.omp_set_num_threads(threads)
            lat_ms = np.array(lat) * 1000
            cpu_ms = np.array(cpu) * 1000
            rec_all = float(np.mean(found == truth[:, 0]))
            rec_near = float(np.mean(found[:half] == truth[:half, 0]))
            rec_hit = float(np.mean(found[hit] == truth[hit, 0])) if hit.any() else float("nan")
            rec_other = float(np.mean(found[half:] == truth[half:, 0]))
            # the cache's decision: reuse key k when its similarity is >= threshold, else miss
            sims_found = np.einsum("ij,ij->i", q, x[np.maximum(found, 0)])
            ann_dec = np.where((found >= 0) & (sims_found >= args.threshold), found, -1)
            exact_dec = np.where(hit, truth[:, 0], -1)
            agree = float(np.mean(ann_dec == exact_dec))
            mem = idx.memory_bytes() / n
            print(
                f"N={n:>9,} {idx.current:5s} build {build:7.1f} s | p50 {np.percentile(lat_ms, 50):.3f} ms "
                f"p99 {np.percentile(lat_ms, 99):.3f} ms (CPU p50 {np.percentile(cpu_ms, 50):.3f} "
                f"p99 {np.percentile(cpu_ms, 99):.3f} ms) | recall@1 {rec_all:.4f} (near-dup queries {rec_near:.4f}, "
                f"unrelated {rec_other:.4f}) | above {args.threshold}: {rec_hit:.4f} of {int(hit.sum())} "
                f"| same hit/miss decision as exact: {agree:.4f} | {mem:.0f} B/segment "
                f"| exact search {1000 * t_exact:.2f} ms/query (batched)"
            )
            if idx.current == "ivf":
                for npb in args.sweep:
                    _sweep_row(faiss, idx, q, truth[:, 0], half, npb)
            del idx


def _sweep_row(faiss, idx, q, truth, half: int, nprobe: int) -> None:  # type: ignore[no-untyped-def]
    """Recall and thread CPU time of the same trained IVF index at another nprobe."""
    idx.set_search_width(nprobe=nprobe)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    cpu, found = [], np.empty(q.shape[0], np.int64)
    for i in range(q.shape[0]):
        c = time.thread_time()
        _, ks = idx.search(q[i : i + 1], 1)
        cpu.append(time.thread_time() - c)
        found[i] = int(ks[0][0], 16) if ks[0][0] is not None else -1
    faiss.omp_set_num_threads(threads)
    ok = found == truth
    ms = np.array(cpu) * 1000
    print(
        f"    nprobe {nprobe:4d}: recall@1 {ok.mean():.4f} (near-dup {ok[:half].mean():.4f}, "
        f"unrelated {ok[half:].mean():.4f}) | CPU p50 {np.percentile(ms, 50):.2f} "
        f"p99 {np.percentile(ms, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
