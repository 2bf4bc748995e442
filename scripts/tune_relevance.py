"""Tune the coarse stage's sentence-relevance signals on the dev set's tune split, cheaply:
sentences ranked by ``ctxcomp.relevance.combine`` (bi-encoder cosine + lexical / neighbour /
document weights) and kept whole under the budget, exactly as the sentence-retrieval
baseline keeps them (weights 0 = that baseline). No token classifier involved: this
isolates the ranking. Span recall per family and budget for each weight setting.

    python scripts/tune_relevance.py --split tune --budgets 2000 3000 \\
        --grid "0,0,0" "0.5,0,0" "0.5,0.3,0" "0.5,0.3,0.3"
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("runs/devset"))
    ap.add_argument("--split", default="tune")
    ap.add_argument("--budgets", nargs="+", type=int, default=[2000, 3000])
    ap.add_argument("--grid", nargs="+", default=["0,0,0", "0.5,0,0", "0.5,0.3,0", "0.5,0.3,0.3"])
    ap.add_argument("--limit", type=int, default=None)
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
    items = load(a.data / f"{a.split}.jsonl", None, a.limit)
    memo: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    res: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for it in items:
        ctx = it["context"]
        if ctx not in memo:
            memo.clear()
            units = sentence_units(ctx)
            emb = r.embed([u.strip() for u in units])
            # document of each sentence: "Passage N:" blocks (multi-doc), else one
            np.cumsum([0] + [len(u) for u in units])[:-1]
            marks = [i for i in range(len(units)) if units[i].lstrip().startswith("Passage ")]
            doc = np.zeros(len(units), np.int64)
            for k, m in enumerate(marks):
                doc[m:] = k
            memo[ctx] = (units, emb, doc)
        units, emb, doc = memo[ctx]
        dense = emb @ r.embed([it["question"]])[0]
        for g in a.grid:
            lx, nb, dc = (float(x) for x in g.split(","))
            s = combine(
                it["question"], [u.strip() for u in units], dense, doc, RelevanceOptions(lx, nb, dc)
            )
            order = sorted(range(len(units)), key=lambda i: (-s[i], i))
            for b in a.budgets:
                text = select_sentences(units, order, b, tok)
                res[(g, it["family"], b)].append(answer_span_recall(text, it["answers"]) or 0.0)
    fams = list(dict.fromkeys(it["family"] for it in items))
    print("| lexical,neighbor,document | budget | " + " | ".join(fams) + " | mean |")
    print("|---|---:|" + "---:|" * (len(fams) + 1))
    for g in a.grid:
        for b in a.budgets:
            v = [100 * float(np.mean(res[(g, f, b)])) for f in fams]
            print(f"| {g} | {b} | " + " | ".join(f"{x:.1f}" for x in v) + f" | {np.mean(v):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
