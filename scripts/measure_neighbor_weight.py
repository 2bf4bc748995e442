"""Choose the default model's ``neighbor_weight`` on development data that is not evaluation data.

Contexts: ``--passages`` held-out bigbench QA passages (``heldout_qa.jsonl`` written by
``scripts/build_default_data.py labels``: passages never trained on, nothing from
../shared/data) joined with blank lines, seeded; the question's passage is one of them, the
others are distractors. Each context is compressed by the embedded default model to
``ratio`` of its cl100k tokens with each ``neighbor_weight``, and by random word drop at the
same budget; the score is answer-span recall (``evals.longbench.proxies``).

    python scripts/measure_neighbor_weight.py --n 80 --ratios 0.2 0.33 0.5 --weights 0 0.3 0.5 0.7
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
    a = ap.parse_args()

    import ctxcomp
    from ctxcomp.models import load_default
    from evals.longbench.methods import keep_within_budget, lexical_units
    from evals.longbench.proxies import answer_span_recall

    held = [json.loads(line) for line in Path(a.heldout).read_text(encoding="utf-8").splitlines()]
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
            scores.setdefault("random word drop", []).append(
                answer_span_recall(rand, target["answers"]) or 0.0
            )
            for w, c in comps.items():
                out = c.compress(ctx, target_tokens=budget).text
                assert tok.count(out) <= budget
                scores.setdefault(f"default, neighbor_weight {w:g}", []).append(
                    answer_span_recall(out, target["answers"]) or 0.0
                )
        print(
            f"ratio {ratio}: n={a.n} contexts of {a.passages} held-out bigbench passages, "
            "answer-span recall"
        )
        for k, v in scores.items():
            print(f"  {k:34s} {np.mean(v):.3f}")


if __name__ == "__main__":
    main()
