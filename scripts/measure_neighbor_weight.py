"""Choose the default model's ``neighbor_weight`` on development data that is not evaluation data.

Contexts: ``--passages`` held-out bigbench QA passages (``heldout_qa.jsonl`` written by
``scripts/build_default_data.py labels``: passages never trained on, nothing from
../shared/data) joined with blank lines, seeded; the question's passage is one of them, the
others are distractors. Each context is compressed by the embedded default model to
``ratio`` of its cl100k tokens with each ``neighbor_weight``, and by random word drop at the
same budget; the score is answer-span recall (``evals.longbench.proxies``) of

- the passage's gold answer (short: exact contiguous run), and
- a long answer: one sentence of the question's passage (at least ``--long-words`` words,
  seeded), scored as the proxy scores long answers, ROUGE-L recall — the shape of the
  extractive long-answer tasks (qasper, multifieldqa), which reward keeping clauses whole.

    python scripts/measure_neighbor_weight.py --n 80 --ratios 0.2 0.33 0.5 --weights 0 0.3 0.5 0.7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DATA = Path(os.environ.get("CTXCOMP_CACHE") or Path.home() / ".cache" / "ctxcomp")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heldout", default=str(DATA / "default-data" / "heldout_qa.jsonl"))
    ap.add_argument("--n", type=int, default=80, help="contexts")
    ap.add_argument("--passages", type=int, default=20, help="passages per context")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.2, 0.33, 0.5])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--long-words", type=int, default=10)
    a = ap.parse_args()

    import ctxcomp
    from ctxcomp.models import load_default
    from evals.longbench.methods import keep_within_budget, lexical_units
    from evals.longbench.proxies import answer_span_recall

    held = [json.loads(line) for line in Path(a.heldout).read_text(encoding="utf-8").splitlines()]

    def long_answer(passage: str, rng: random.Random) -> str | None:
        sents = [x for x in re.split(r"(?<=[.!?])\s+", passage) if len(x.split()) >= a.long_words]
        return rng.choice(sents) if sents else None

    tok = ctxcomp.get_tokenizer("cl100k_base")
    comps = {w: load_default(neighbor_weight=w) for w in a.weights}
    for ratio in a.ratios:
        rng = random.Random(a.seed)
        scores: dict[str, list[float]] = {}
        for i in range(a.n):
            ps = rng.sample(held, a.passages)
            target = ps[0]
            ctx = "\n\n".join(p["context"] for p in ps)
            budget = int(ratio * tok.count(ctx))
            units = lexical_units(ctx)
            order = list(range(len(units)))
            random.Random(i).shuffle(order)
            rand = keep_within_budget(units, order, budget, tok)
            la = long_answer(target["context"], random.Random(a.seed * 1000 + i))
            outs = {"random word drop": rand}
            for w, c in comps.items():
                out = c.compress(ctx, target_tokens=budget).text
                assert tok.count(out) <= budget
                outs[f"default, neighbor_weight {w:g}"] = out
            for name, out in outs.items():
                sc = scores.setdefault(name, ([], []))
                sc[0].append(answer_span_recall(out, target["answers"]) or 0.0)
                if la is not None:
                    sc[1].append(answer_span_recall(out, [la]) or 0.0)
        print(
            f"ratio {ratio}: n={a.n} contexts of {a.passages} held-out bigbench passages; "
            "answer-span recall: gold answer | a long answer (one passage sentence, ROUGE-L recall)"
        )
        for k, (short, long_) in scores.items():
            print(
                f"  {k:34s} {np.mean(short):.3f} (n={len(short)}) | {np.mean(long_):.3f} (n={len(long_)})"
            )


if __name__ == "__main__":
    main()
