"""Load test of ``ctxcomp serve`` on loopback: proxy vs direct-to-upstream, side by side.

Three processes: the fake upstream (tests/serve/fake_upstream.py: a model server that
answers after ``--ttfb-ms`` and streams ``n`` chunks ``--token-ms`` apart), the proxy
(``ctxcomp serve``, the embedded default compressor, SQLite segment cache), and this load
generator. ``--clients``
concurrent clients send ``--requests`` requests through the proxy; each request is also
sent straight to the upstream by the same client, in random order, so both arms share the
machine's noise. A mix of streaming and non-streaming, short chats (nothing to compress)
and RAG requests whose tool results are compressed (documents drawn from a pool, as
retrieval repeats them: the cache serves the repeats).

Every response is verified: streams must carry exactly this request's chunks ``<rid>:0`` ..
``<rid>:<n-1>`` in order, then ``[DONE]``; non-streaming bodies the same text.

Reported: errors, corrupted/reordered streams, the latency the proxy adds per request
(proxy - direct, paired) with and without the engine's time (``x-ctxcomp-compression-ms``:
parse, count, queue, compress), time to first byte for streams, and compression time.

    python benchmarks/bench_proxy.py --clients 50 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks._setup import essays  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> np.ndarray:
    """CPU time (user + system) of the server process, and of its children (the
    compression workers)."""
    import psutil

    main = psutil.Process(pid)
    out = np.zeros(2)
    for i, p in enumerate([main, *main.children(recursive=True)]):
        try:
            t = p.cpu_times()
            out[min(i, 1)] += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({url})")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"server did not start: {url}")


@dataclass
class Stats:
    direct: list[float] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    added: list[float] = field(default_factory=list)  # proxy - direct (s)
    added_ex: list[float] = field(default_factory=list)  # proxy - engine time - direct (s)
    ttfb_added: list[float] = field(default_factory=list)
    compress_ms: list[float] = field(default_factory=list)  # compressed requests only
    tokens: list[tuple[int, int]] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    corrupted: int = 0
    streams: int = 0


def make_request(
    i: int, rng: random.Random, pool: list[str], tenants: int, timing: dict[str, str]
) -> tuple[dict[str, Any], str]:
    rid = f"r{i:05d}"
    n = rng.randint(8, 24)
    meta = {"rid": rid, **timing}
    if rng.random() < 0.3:  # RAG: retrieved documents come back as tool results
        docs = rng.sample(pool, rng.randint(1, 3))
        calls = [
            {"id": f"c{j}", "type": "function", "function": {"name": "search", "arguments": "{}"}}
            for j in range(len(docs))
        ]
        msgs: list[dict[str, Any]] = [
            {"role": "system", "content": "Answer from the documents."},
            {"role": "user", "content": f"Question {rid}: what do these documents argue?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": f"c{j}", "content": d} for j, d in enumerate(docs)),
        ]
    else:
        msgs = [{"role": "user", "content": f"Hello from {rid}, tell me something."}]
    body = {
        "model": "echo",
        "messages": msgs,
        "max_tokens": n,
        "stream": rng.random() < 0.5,
        "metadata": meta,
    }
    return body, f"sk-bench-tenant-{i % tenants}"


def expected(body: dict[str, Any]) -> list[str]:
    rid = body["metadata"]["rid"]
    return [f"{rid}:{i} " for i in range(body["max_tokens"])]


async def call(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str
) -> tuple[float, float, httpx.Headers, bool]:
    """Send one request; (total s, first byte s, headers, content verified)."""
    t0 = time.perf_counter()
    headers = {"authorization": f"Bearer {key}"}
    async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"status {r.status_code}: {r.text[:200]}")
        first = None
        buf = b""
        async for chunk in r.aiter_raw():
            first = first or time.perf_counter()
            buf += chunk
    total = time.perf_counter() - t0
    want = expected(body)
    if body["stream"]:
        events = [e for e in buf.decode().split("\n\n") if e.strip()]
        ok = events[-1] == "data: [DONE]"
        got = [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:-1]]
        ok = ok and got == want
    else:
        ok = json.loads(buf)["choices"][0]["message"]["content"] == "".join(want)
    return total, (first or time.perf_counter()) - t0, r.headers, ok


def doc_pool() -> list[str]:
    """24 documents of ~550 tokens (Paul Graham essays)."""
    return [t[i : i + 2500] for t in essays()[:12] for i in (0, 3000)]


async def warm_up(px: str, tenants: int) -> list[float]:
    """Each tenant's first sight of each document, one request at a time: the cold
    compressions (ms). Retrieval repeats documents; the measured run sees cached ones."""
    call = {"id": "c0", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    out = []
    async with httpx.AsyncClient(timeout=600) as client:
        for t in range(tenants):
            for d in doc_pool():
                msgs = [
                    {"role": "user", "content": "What does it argue?"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "c0", "content": d},
                ]
                r = await client.post(
                    px + "/v1/chat/completions",
                    json={"model": "echo", "max_tokens": 1, "messages": msgs},
                    headers={"authorization": f"Bearer sk-bench-tenant-{t}"},
                )
                assert r.headers["x-ctxcomp-status"] == "compressed", dict(r.headers)
                out.append(float(r.headers["x-ctxcomp-compression-ms"]))
    return out


async def run_load(up: str, px: str, args: argparse.Namespace) -> Stats:
    n_requests, n_clients, seed, tenants = args.requests, args.clients, args.seed, args.tenants
    rng = random.Random(seed)
    pool = doc_pool()
    timing = {"ttfb": str(args.ttfb_ms / 1000), "gap": str(args.token_ms / 1000)}
    reqs = [make_request(i, rng, pool, tenants, timing) for i in range(n_requests)]
    st = Stats()
    next_i = 0
    # idle connections are dropped by the client before any server's keep-alive timeout
    # (uvicorn's default is 5 s), so a reused connection is never one the server just closed
    limits = httpx.Limits(
        max_connections=n_clients * 2, max_keepalive_connections=n_clients * 2, keepalive_expiry=2.0
    )
    timeout = httpx.Timeout(120.0)

    async def worker(wid: int, client: httpx.AsyncClient) -> None:
        nonlocal next_i
        wrng = random.Random(seed * 1000 + wid)
        while next_i < len(reqs):
            body, key = reqs[next_i]
            next_i += 1
            order = ["direct", "proxy"] if wrng.random() < 0.5 else ["proxy", "direct"]
            res: dict[str, Any] = {}
            try:
                for arm in order:
                    res[arm] = await call(client, up if arm == "direct" else px, body, key)
            except Exception as exc:  # counted, never hidden
                rid = body["metadata"]["rid"]
                st.errors.append(f"{rid} ({arm}): {type(exc).__name__}: {exc}")
                continue
            (dt, dfb, _, dok), (pt, pfb, ph, pok) = res["direct"], res["proxy"]
            st.corrupted += (not dok) + (not pok)
            st.streams += bool(body["stream"])
            # --aa: the second arm also went straight to the model server (no ctxcomp headers)
            eng = float(ph.get("x-ctxcomp-compression-ms", "0")) / 1000
            status = ph.get("x-ctxcomp-status", "a/a")
            st.status[status] = st.status.get(status, 0) + 1
            st.direct.append(dt)
            st.proxy.append(pt)
            st.engine_ms.append(eng * 1000)
            st.added.append(pt - dt)
            st.added_ex.append(pt - eng - dt)
            if body["stream"]:
                st.ttfb_added.append(pfb - eng - dfb)
            if status == "compressed":
                st.compress_ms.append(eng * 1000)
                st.tokens.append(
                    (int(ph["x-ctxcomp-tokens-before"]), int(ph["x-ctxcomp-tokens-after"]))
                )

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(worker(w, client) for w in range(n_clients)))
    return st


def pct(xs: list[float], q: float, scale: float = 1000.0) -> str:
    return f"{np.percentile(xs, q) * scale:.1f}" if xs else "-"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--tenants", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--plot", type=Path, help="draw the latency distributions (PNG) here")
    ap.add_argument(
        "--ttfb-ms",
        type=float,
        default=150.0,
        help="the fake model server's time to first token (ms)",
    )
    ap.add_argument(
        "--token-ms",
        type=float,
        default=20.0,
        help="the fake model server's time per streamed token (ms): 20 = 50 tokens/s",
    )
    ap.add_argument(
        "--compress-in",
        choices=("process", "thread"),
        default="process",
        help="the proxy's serve.compress_in",
    )
    ap.add_argument(
        "--no-compress",
        action="store_true",
        help="policy off: measure the proxy's own cost alone (every request passes as is)",
    )
    ap.add_argument(
        "--aa",
        action="store_true",
        help="A/A noise floor: both arms go straight to the model server (same pairing, same "
        "load); its paired 'added' percentiles are what the measurement alone spreads by",
    )
    ap.add_argument(
        "--coarse",
        action="store_true",
        help="keep the question-aware coarse stage on (sentence embeddings per request: "
        "seconds per compression on a small CPU)",
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ctxcomp-bench-proxy-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests" / "serve")}
    up_port, px_port = free_port(), free_port()
    up_url, px_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{px_port}"
    pipeline = {"cache": str(tmp / "segments.sqlite"), "coarse": args.coarse}
    cfg = tmp / "serve.json"
    cfg.write_text(
        json.dumps(
            {
                "ctxcomp": pipeline,
                "serve": {
                    "upstream": up_url + "/v1",
                    "compress_in": args.compress_in,
                    "policy": {
                        "ratio": 0.5,
                        "min_part_tokens": 64,
                        "enabled": not args.no_compress,
                    },
                },
            }
        )
    )
    logs = [(tmp / "upstream.log").open("wb"), (tmp / "proxy.log").open("wb")]
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import uvicorn; from fake_upstream import FakeUpstream; "
            f"uvicorn.run(FakeUpstream(), host='127.0.0.1', port={up_port}, log_level='warning', "
            "access_log=False, timeout_keep_alive=75)",
        ],
        env=env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctxcomp",
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(px_port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_up(up_url + "/v1/models", upstream)
        wait_up(px_url + "/healthz", proxy)
        cold = [] if args.no_compress else asyncio.run(warm_up(px_url, args.tenants))
        cpu0, ucpu0 = cpu_seconds(proxy.pid), cpu_seconds(upstream.pid)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        st = asyncio.run(run_load(up_url, up_url if args.aa else px_url, args))
        wall = time.perf_counter() - t0
        cpu, ucpu = cpu_seconds(proxy.pid) - cpu0, cpu_seconds(upstream.pid) - ucpu0
        load = (load0 + os.getloadavg()[0]) / 2
    finally:
        for p in (proxy, upstream):
            p.terminate()
            p.wait(30)
        for f in logs:
            f.close()

    n = len(st.proxy)
    proxy_ex = np.array(st.proxy) - np.array(st.engine_ms) / 1000
    red = [1 - a / b for b, a in st.tokens]
    out = {
        "command": " ".join(["python benchmarks/bench_proxy.py", *sys.argv[1:]]),
        "requests": args.requests,
        "clients": args.clients,
        "completed_pairs": n,
        "streams": st.streams,
        "errors_through_proxy": sum("(proxy)" in e for e in st.errors),
        "errors_direct": sum("(direct)" in e for e in st.errors),
        "corrupted_or_reordered": st.corrupted,
        "outcomes": st.status,
        "wall_s": round(wall, 1),
        "machine_load_avg_1min": round(load, 1),
        "proxy_cpu_ms_per_request": round(cpu[0] * 1000 / max(n, 1), 2),
        "compression_workers_cpu_ms_per_request": round(cpu[1] * 1000 / max(n, 1), 2),
        # for scale: the fake upstream (a bare uvicorn app) per request it served
        "upstream_cpu_ms_per_request": round(ucpu[0] * 1000 / max(2 * n, 1), 2),
        "cpu_count": os.cpu_count(),
        "direct_ms": {"p50": pct(st.direct, 50), "p99": pct(st.direct, 99)},
        "proxy_ms": {"p50": pct(st.proxy, 50), "p99": pct(st.proxy, 99)},
        "added_ms_excluding_compression": {
            "p50": pct(st.added_ex, 50),
            "p99": pct(st.added_ex, 99),
        },
        "added_ms_total": {"p50": pct(st.added, 50), "p99": pct(st.added, 99)},
        # the same, as the gap between the two distributions' quantiles (the paired
        # difference's tails also carry both arms' own noise)
        "quantile_gap_ms_excluding_compression": {
            q: f"{(np.percentile(proxy_ex, k) - np.percentile(st.direct, k)) * 1000:.1f}"
            for q, k in (("p50", 50), ("p90", 90), ("p99", 99))
        },
        "stream_ttfb_added_ms_excluding_compression": {
            "p50": pct(st.ttfb_added, 50),
            "p99": pct(st.ttfb_added, 99),
        },
        "engine_ms_all_requests": {
            "p50": pct(st.engine_ms, 50, 1),
            "p99": pct(st.engine_ms, 99, 1),
        },
        "compression_ms": {
            "n": len(st.compress_ms),
            "p50": pct(st.compress_ms, 50, 1),
            "p99": pct(st.compress_ms, 99, 1),
        },
        "cold_compression_ms_one_at_a_time": {
            "n": len(cold),
            "p50": pct(cold, 50, 1),
            "p99": pct(cold, 99, 1),
        },
        "pipeline": pipeline,
        "compress_in": args.compress_in,
        "token_reduction_mean": round(float(np.mean(red)), 3) if red else None,
    }
    print(json.dumps(out, indent=2))
    for e in st.errors[:10]:
        print("error:", e, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if args.plot:
        from benchmarks._proxy_plot import plot

        plot(st.direct, st.proxy, st.engine_ms, st.added_ex, out, args.plot)
    if any("(proxy)" in e for e in st.errors) or st.corrupted:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
