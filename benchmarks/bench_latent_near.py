"""Does near-duplicate reuse of concept embeddings change answers?

For held-out cloze items (gold answer = one word of the context) the context is cached,
then edited by replacing one word with another of the same token length:

* ``answer edit`` — the gold word itself is replaced (the new word is the new gold answer);
* ``other edit``  — a word in another sentence is replaced (the answer is unchanged).

The edited context is compressed twice: fresh, and with near reuse (segments within
``--max-edits`` tokens of a cached one take its rows). Reported per edit kind: how many
segments were reused, the mean change in the answer's log-likelihood (reuse - fresh), and
how often the greedy answer differs.

    python benchmarks/bench_latent_near.py --data data/latent/test.jsonl \
        --encoder complm-run/encoder --n 20
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

WORD = re.compile(r"\b[A-Za-z]{4,}\b")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--max-edits", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    from ctxcomp.cache import MemoryStore, SegmentCache
    from ctxcomp.latent import answer_logprobs, build_inputs, generate, load_lm
    from ctxcomp.latent.complm import SegmentCompressor

    torch.set_num_threads(a.threads)
    model, tok = load_lm("smollm2")
    rows = [json.loads(x) for x in a.data.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["kind"] == "cloze" and r["answer"] in r["context"]][: a.n]
    rng = random.Random(0)
    vocab = sorted({w for r in rows for w in WORD.findall(r["context"])})
    stats: dict[str, list[dict[str, float]]] = {"answer edit": [], "other edit": []}
    for r in rows:
        ctx, gold = r["context"], r["answer"]
        n_tok = len(tok.encode(" " + gold, add_special_tokens=False))
        subs = [w for w in vocab if w != gold and len(tok.encode(" " + w)) == n_tok]
        others = [
            m for m in WORD.finditer(ctx) if gold not in ctx[max(0, m.start() - 80) : m.end() + 80]
        ]
        if not subs or not others:
            continue
        new = rng.choice(subs)
        m = rng.choice(others)
        edits = {
            "answer edit": (ctx.replace(gold, new, 1), new),
            "other edit": (ctx[: m.start()] + rng.choice(subs) + ctx[m.end() :], gold),
        }
        for kind, (text, ans) in edits.items():
            cache = SegmentCache(MemoryStore(), near=True, near_threshold=0.9)
            reuse = SegmentCompressor(
                model, tok, encoder=a.encoder, cache=cache, near=True, near_max_edits=a.max_edits
            )
            reuse.compress(ctx, ratio=0.5)
            lp_reuse = reuse.compress(text, ratio=0.5)
            fresh = SegmentCompressor(model, tok, encoder=reuse.encoder).compress(text, ratio=0.5)
            q = r["question"].replace(gold, new) if kind == "answer edit" else r["question"]
            out: dict[str, float] = {"reused": float(reuse.near_reused)}
            with torch.inference_mode():
                ll = {}
                for arm, lp in (("reuse", lp_reuse), ("fresh", fresh)):
                    b = build_inputs(model, tok, q, lp, answers=ans)
                    ll[arm] = float(answer_logprobs(model, b).sum())
                out["dll"] = ll["reuse"] - ll["fresh"]
                ga = generate(model, tok, q, lp_reuse, max_new_tokens=6)
                gf = generate(model, tok, q, fresh, max_new_tokens=6)
                out["changed"] = float(ga.strip() != gf.strip())
            stats[kind].append(out)
    print(f"near reuse, max {a.max_edits} token edits, cosine >= 0.9 (MiniLM)")
    print(
        f"{'edit':12} {'items':>5} {'reused seg/item':>16} {'mean dLL':>9} {'answer changed':>15}"
    )
    for kind, xs in stats.items():
        if not xs:
            continue
        n = len(xs)
        print(
            f"{kind:12} {n:5d} {sum(x['reused'] for x in xs) / n:16.2f} "
            f"{sum(x['dll'] for x in xs) / n:9.3f} {sum(x['changed'] for x in xs) / n:15.2f}"
        )


if __name__ == "__main__":
    main()
