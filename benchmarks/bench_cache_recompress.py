"""Re-compress a cached 8k-token document at new budgets vs compressing it fresh.

Both arms in one process: fresh = no cache (model forward on every window); cached = the
same compressor with a warm SQLite cache, at budgets it has not seen. Medians of repeats.

    python benchmarks/bench_cache_recompress.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=8000)
    ap.add_argument("--fresh-repeats", type=int, default=3)
    ap.add_argument("--cached-repeats", type=int, default=10)
    args = ap.parse_args()

    import _setup

    import ctxcomp
    from ctxcomp.cache import SegmentCache, SQLiteStore

    text = _setup.text_of_tokens(args.tokens)
    model = str(_setup.checkpoint_dir())
    plain = ctxcomp.TokenClassifierCompressor(model, device="cpu", score_memo_bytes=0)
    cache = SegmentCache(SQLiteStore(os.path.join(tempfile.mkdtemp(), "segments.sqlite")))
    cached = ctxcomp.TokenClassifierCompressor(model, device="cpu", cache=cache)
    n = ctxcomp.get_tokenizer("cl100k_base").count(text)
    plain.compress(text[:2000], ratio=0.5)  # warm-up

    fresh = []
    for _ in range(args.fresh_repeats):
        t = time.perf_counter()
        plain.compress(text, ratio=0.33)
        fresh.append(time.perf_counter() - t)
    cached.compress(text, ratio=0.33)  # populate the cache (budget 0.33)
    budgets = [dict(ratio=0.2), dict(ratio=0.25), dict(ratio=0.5), dict(target_tokens=2000)]
    per = {}
    for b in budgets:
        ts = []
        for _ in range(args.cached_repeats):
            t = time.perf_counter()
            cached.compress(text, **b)
            ts.append(time.perf_counter() - t)
        per[str(b)] = statistics.median(ts)
    same = all(
        plain.compress(text, **b).text == cached.compress(text, **b).text for b in budgets[:2]
    )
    f = statistics.median(fresh)
    c = statistics.median(per.values())
    print(f"document: {n} cl100k tokens (the reader's)")
    print(f"fresh compress (no cache), median of {args.fresh_repeats}: {1000 * f:.0f} ms")
    for k, v in per.items():
        print(f"cached re-compress at {k}: {1000 * v:.1f} ms ({f / v:.0f}x)")
    print(f"median cached: {1000 * c:.1f} ms  -> speedup {f / c:.0f}x")
    print(f"identical to fresh at new budgets: {same}")
    print(f"segment hits/misses: {cache.stats.hits}/{cache.stats.misses}")


if __name__ == "__main__":
    main()
