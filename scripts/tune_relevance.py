"""Compare sentence rankings on the dev set, cheaply: sentences ranked by a relevance signal
and kept whole under the budget, exactly as the sentence-retrieval baseline keeps them. No
token classifier: this isolates the ranking. Span recall per family and budget.

Rankings (``--grid``):
* ``lex,nb,doc[,fs]``: ``ctxcomp.relevance.combine`` over the bi-encoder cosine with those
  lexical / neighbour / document weights (and the few-shot label-line weight ``fs``);
  ``0,0,0`` is the sentence-retrieval baseline (``sentret``);
* ``rr+lex,nb,doc[,fs]``: the same, then the question-conditioned scorer (``--scorer DIR``)
  reranks the best sentences up to ``--qs-pool`` x the largest budget
  (``ctxcomp.qscorer.rerank``: what the coarse stage does with it).

Sentence embeddings are cached per context under ``runs/emb-cache`` (the bi-encoder is
deterministic), so grids and reruns cost only the new signals.

    python scripts/tune_relevance.py --data runs/devset2 --split tune --budgets 2000 3000 \\
        --grid "0,0,0" "0.6,0.3,0.3" "0.6,0.3,0.3,1" "rr+0.6,0.3,0.3" --scorer runs/qscorer
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse(g: str) -> tuple[str, tuple[float, float, float, float]]:
    """("bi" | "rr", weights): ``rr+...`` = those signals, then the question-conditioned
    scorer's rerank of the pool (``ctxcomp.qscorer.rerank``, weight 1)."""
    kind = "rr" if g.startswith("rr") else "bi"
    rest = g[3:] if kind == "rr" else g
    vals = [float(x) for x in rest.split(",")] if rest else []
    vals += [0.0] * (4 - len(vals))
    return kind, (vals[0], vals[1], vals[2], vals[3])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("runs/devset2"))
    ap.add_argument("--split", default="tune")
    ap.add_argument("--budgets", nargs="+", type=int, default=[2000, 3000])
    ap.add_argument("--grid", nargs="+", default=["0,0,0", "0.6,0.3,0.3"])
    ap.add_argument("--scorer", default=None, help="question-conditioned scorer (delta dir)")
    ap.add_argument("--families", nargs="+", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write per-item rows (jsonl)")
    ap.add_argument(
        "--qs-pool",
        type=float,
        default=2.0,
        help="the scorer reads the best sentences up to this many times the largest budget",
    )
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    import ctxcomp
    from ctxcomp.rankers import BiEncoderRanker
    from ctxcomp.relevance import RelevanceOptions, combine
    from evals.devset.run import load
    from evals.longbench.proxies import answer_span_recall
    from evals.longbench.retrieval import select_sentences, sentence_units

    tok = ctxcomp.get_tokenizer("cl100k_base")
    r = BiEncoderRanker()
    qsc = None
    if any(parse(g)[0] == "rr" for g in a.grid):
        from ctxcomp.qscorer import QuestionScorer, rerank

        qsc = QuestionScorer(a.scorer)
    items = load(a.data / f"{a.split}.jsonl", a.families, a.limit)
    cache = Path("runs/emb-cache")
    cache.mkdir(parents=True, exist_ok=True)
    memo: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    res: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    secs: dict[str, float] = defaultdict(float)
    rows = []
    from tqdm import tqdm

    for it in tqdm(items, file=sys.stderr, desc="items"):
        ctx = it["context"]
        if ctx not in memo:
            memo.clear()
            units = sentence_units(ctx)
            key = hashlib.sha1(ctx.encode()).hexdigest()
            f = cache / f"{key}.npy"
            if f.exists():
                emb = np.load(f)
            else:
                emb = r.embed([u.strip() for u in units])
                np.save(f, emb)
            # document of each sentence: "Passage N:" blocks (multi-doc), else one
            marks = [i for i in range(len(units)) if units[i].lstrip().startswith("Passage ")]
            doc = np.zeros(len(units), np.int64)
            for k, m in enumerate(marks):
                doc[m:] = k
            memo[ctx] = (units, emb, doc)
        units, emb, doc = memo[ctx]
        t0 = time.perf_counter()
        dense = emb @ r.embed([it["question"]])[0]
        secs["bi"] += time.perf_counter() - t0
        lead = len(ctx) - len("".join(units))
        ends = lead + np.cumsum([len(u) for u in units])
        spans = [(int(e - len(u)), int(e - len(u) + len(u.rstrip()))) for u, e in zip(units, ends)]
        row = {"id": it["id"], "family": it["family"]}
        for g in a.grid:
            kind, (lx, nb, dc, fs) = parse(g)
            s = combine(
                it["question"],
                [u.strip() for u in units],
                dense,
                doc,
                RelevanceOptions(lx, nb, dc, fewshot=fs),
            )
            if kind == "rr":
                t0 = time.perf_counter()
                s = rerank(qsc, it["question"], [ctx], {0: (spans, s)}, a.qs_pool * max(a.budgets))[
                    0
                ][1]
                secs[g] += time.perf_counter() - t0
            order = sorted(range(len(units)), key=lambda i: (-s[i], i))
            for b in a.budgets:
                text = select_sentences(units, order, b, tok)
                v = answer_span_recall(text, it["answers"]) or 0.0
                res[(g, it["family"], b)].append(v)
                row[f"{g}@{b}"] = v
        rows.append(row)
    fams = list(dict.fromkeys(it["family"] for it in items))
    print(
        f"n = {len(items)} ({a.split}); seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in secs.items())
    )
    print("| ranking | budget | " + " | ".join(fams) + " | mean |")
    print("|---|---:|" + "---:|" * (len(fams) + 1))
    for g in a.grid:
        for b in a.budgets:
            v = [100 * float(np.mean(res[(g, f, b)])) for f in fams]
            print(f"| {g} | {b} | " + " | ".join(f"{x:.1f}" for x in v) + f" | {np.mean(v):.1f} |")
    if a.out:
        a.out.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
