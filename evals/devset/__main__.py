"""``python -m evals.devset``: build the development set, run methods on it, report.

    python -m evals.devset build --out runs/devset --n 30
    python -m evals.devset run --data runs/devset --split tune --name tune-base \\
        --methods head random sentret pipeline --budgets 2000 3000 --ll-lm smollm2 --ll-limit 6
    python -m evals.devset report --name tune-base
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .build import FAMILIES, SPLITS, build
from .run import load, report, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.devset", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, default=Path("runs/devset"))
    b.add_argument("--n", type=int, default=30, help="questions per family and split")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    b.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    b.add_argument("--n-train", type=int, default=None, help="questions per family of train")
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, default=Path("runs/devset"))
    r.add_argument("--split", choices=SPLITS, required=True)
    r.add_argument("--name", required=True, help="run name: rows in runs/dev-<name>/")
    r.add_argument("--methods", nargs="+", default=["head", "random", "sentret", "pipeline"])
    r.add_argument("--budgets", nargs="+", type=int, default=[2000, 3000])
    r.add_argument("--families", nargs="+", default=None, choices=FAMILIES)
    r.add_argument("--limit", type=int, default=None, help="first N items per family")
    r.add_argument(
        "--ll-lm", default="none", help="LM of the log-likelihood proxy (smollm2) or none"
    )
    r.add_argument(
        "--ll-limit", type=int, default=0, help="LL proxy on the first N items per family"
    )
    r.add_argument("--threads", type=int, default=1)
    rp = sub.add_parser("report")
    rp.add_argument("--name", required=True)
    rp.add_argument("--methods", nargs="+", default=None)
    a = p.parse_args(argv)
    if a.cmd == "build":
        m = build(a.out, a.n, a.seed, tuple(a.families), tuple(a.splits), a.n_train)
        print(m["files"])
        return 0
    if a.cmd == "run":
        import torch

        torch.set_num_threads(a.threads)
        items = load(a.data / f"{a.split}.jsonl", a.families, a.limit)
        out = Path("runs") / f"dev-{a.name}"
        run(items, a.methods, a.budgets, out, None if a.ll_lm == "none" else a.ll_lm, a.ll_limit)
        print(report(out))
        return 0
    print(report(Path("runs") / f"dev-{a.name}", a.methods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
