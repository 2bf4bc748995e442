"""CompLLM quality on held-out items: answer log-likelihood (and exact match for short
answers) with SmolLM2-135M-Instruct as the reader, under five contexts:

* ``full``  — the whole context as text;
* ``ce@2x`` / ``ce@4x`` — CompLLM concept embeddings at rate 2 / 4 (⌈tokens/rate⌉ rows per
  segment);
* ``text@2x`` / ``text@4x`` — ctxcomp's text compressor (embedded default) given exactly the
  number of SmolLM2 positions the CEs use for that item (counted in SmolLM2's tokenizer);
* ``none`` — no context.

``gain`` = (LL - LL_none) / (LL_full - LL_none), averaged over items where the full context
helps (LL_full > LL_none): 1 = as good as the full context, 0 = no better than nothing.

    python benchmarks/bench_latent_quality.py --data data/latent/test.jsonl \
        --encoder complm-run/encoder --n 40
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path
from typing import Any


def norm(s: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", s.lower()).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="test.jsonl from build_latent_data")
    ap.add_argument("--encoder", required=True, help="trained encoder directory")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write per-item rows here")
    a = ap.parse_args()

    import torch

    import ctxcomp
    from ctxcomp.latent import answer_logprobs, build_inputs, generate, load_lm, local_model_dir
    from ctxcomp.latent.complm import SegmentCompressor

    torch.set_num_threads(a.threads)
    model, tok = load_lm("smollm2")
    comp = SegmentCompressor(model, tok, encoder=a.encoder)
    reader = f"hf:{local_model_dir('smollm2')}"
    rows = [json.loads(x) for x in a.data.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if len(tok.encode(r["context"])) <= 400][: a.n]
    out: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for i, r in enumerate(rows):
        ctxs: dict[str, Any] = {"full": r["context"], "none": None}
        for rate in (2, 4):
            # the compressor's own `rate`x (ratio 1/rate can be unreachable: rows per
            # segment are rounded up); the text arm gets the same positions
            lp = comp.compress(r["context"], target_tokens=comp.positions(r["context"], rate))
            ctxs[f"ce@{rate}x"] = lp
            txt = ctxcomp.compress(r["context"], target_tokens=lp.compressed_tokens, reader=reader)
            ctxs[f"text@{rate}x"] = txt.text
        rec: dict[str, Any] = {"id": r["id"], "kind": r["kind"]}
        with torch.inference_mode():
            for name, c in ctxs.items():
                b = build_inputs(model, tok, r["question"], c, answers=r["answer"])
                lp_ = answer_logprobs(model, b)
                rec[f"ll:{name}"] = float(lp_.sum()) / int((b.labels >= 0).sum())
                if r["kind"] == "cloze":
                    ans = generate(model, tok, r["question"], c, max_new_tokens=6)
                    words = norm(ans).split()
                    rec[f"em:{name}"] = float(bool(words) and words[0] == norm(r["answer"]))
        out.append(rec)
        print(f"{i + 1}/{len(rows)} ({time.monotonic() - t0:.0f} s)", flush=True)
        if a.json:  # rows so far, so a long run that is stopped keeps what it measured
            a.json.write_text(json.dumps(out, indent=1))
    names = ["full", "ce@2x", "text@2x", "ce@4x", "text@4x", "none"]
    print(f"\n{len(out)} held-out items ({sum(r['kind'] == 'cloze' for r in out)} cloze)")
    print(f"{'context':10} {'mean LL/token':>14} {'gain vs none':>13} {'EM (cloze)':>11}")
    for n in names:
        ll = sum(r[f"ll:{n}"] for r in out) / len(out)
        helped = [r for r in out if r["ll:full"] > r["ll:none"] + 1e-6]
        gains = [(r[f"ll:{n}"] - r["ll:none"]) / (r["ll:full"] - r["ll:none"]) for r in helped]
        g = sum(gains) / len(gains) if gains else math.nan
        ems = [r[f"em:{n}"] for r in out if f"em:{n}" in r]
        em = sum(ems) / len(ems) if ems else math.nan
        print(f"{n:10} {ll:14.3f} {g:13.3f} {em:11.3f}")


if __name__ == "__main__":
    main()
