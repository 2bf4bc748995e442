"""Check the readability invariant of a compression (the HTML view's promise).

Among the units the fine stage ranked by the model's keep probability alone — not forced
(force tokens, protected spans), not moved by a selection rule (``UnitScores.rule``: capped
neighbour / repeat / label bonuses, ctxcomp.rules) — no kept unit may have a lower
probability than a dropped one of the same document by more than ``--margin``. Prints,
per file, the worst inversion (max dropped p - min kept p, 0 when none), how many units the
rules moved, and the rules' budget notes; exits 1 if any file breaks the margin.

    python scripts/check_readability.py docs/examples/rag_context.txt --ratio 0.33
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def inversion(result: object) -> tuple[float, int, int]:
    """(worst inversion over the documents, units kept by rules, plain units kept)."""
    worst, ruled, plain_kept = 0.0, 0, 0
    for sc in result.scores or ():  # type: ignore[attr-defined]
        rule = sc.rule if sc.rule is not None else np.zeros(sc.probs.size, np.int8)
        plain = ~sc.forced & (rule == 0)
        kept = plain & sc.kept
        dropped = plain & ~sc.kept
        ruled += int((sc.kept & (rule > 0)).sum())
        plain_kept += int(kept.sum())
        if kept.any() and dropped.any():
            worst = max(worst, float(sc.probs[dropped].max() - sc.probs[kept].min()))
    return worst, ruled, plain_kept


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--ratio", type=float, default=0.33)
    ap.add_argument("--margin", type=float, default=1e-6)
    a = ap.parse_args()
    from ctxcomp.errors import BudgetError
    from ctxcomp.models import load_default

    comp = load_default()
    bad = 0
    for f in a.files:
        try:
            r = comp.compress(f.read_text(encoding="utf-8"), ratio=a.ratio)
        except BudgetError as e:  # protected text over the budget: nothing to check
            print(f"{f}: not checked ({e})")
            continue
        worst, ruled, plain = inversion(r)
        ok = worst <= a.margin
        bad += not ok
        print(
            f"{f}: worst inversion {worst:.4f} ({'ok' if ok else 'BREAKS'} margin {a.margin}); "
            f"{plain} units kept by probability, {ruled} by rules"
        )
        for n in r.notes:
            print(f"  {n}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
