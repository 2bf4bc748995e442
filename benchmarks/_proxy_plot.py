"""The latency picture of benchmarks/bench_proxy.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot(
    direct: list[float],
    proxy: list[float],
    engine_ms: list[float],
    added_ex: list[float],
    out: dict[str, Any],
    path: Path,
) -> None:
    """Latency CDFs: direct vs through the proxy (engine time removed), and the paired
    difference."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    ys = np.linspace(0, 1, len(direct))
    proxy_ex = np.array(proxy) - np.array(engine_ms) / 1000
    for xs, label in (
        (direct, "direct to upstream"),
        (proxy_ex, "through ctxcomp serve (engine time removed)"),
    ):
        a.plot(np.sort(np.asarray(xs)) * 1000, ys, label=label)
    a.set_xscale("log")
    lo, hi = min(min(direct), float(proxy_ex.min())) * 1000, max(max(direct), max(proxy)) * 1000
    a.set_xticks(
        [t for t in (50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000, 20000) if lo <= t <= hi]
    )
    a.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set_xlabel("request latency, ms (log)")
    a.set_ylabel("fraction of requests")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    added = np.sort(np.asarray(added_ex)) * 1000
    b.plot(added, np.linspace(0, 1, len(added)))
    for q in (50, 99):
        v = np.percentile(added, q)
        b.axvline(v, ls="--", c="gray")
        b.text(v, 0.05 + q / 250, f" p{q} {v:.1f} ms", fontsize=8)
    b.set_xlabel("added latency per request (proxy - direct, paired), ms")
    b.set_xlim(min(-20.0, float(added[0])), max(60.0, float(np.percentile(added, 99.5))))
    b.grid(alpha=0.3)
    fig.suptitle(
        f"ctxcomp serve, {out['clients']} clients, {out['completed_pairs']} requests, "
        f"{out['cpu_count']} CPUs (load avg {out['machine_load_avg_1min']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
