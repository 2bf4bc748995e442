"""Train the question-conditioned sentence scorer on the dev set's ``train`` split.

Labels: the sentences that carry each question's answer (``evidence``) and the sentence its
cue words point at (``support``); the few-shot family is left out (its "question" is an
example, handled by the few-shot rule). Nothing from the tune or test splits (disjoint
sources) and nothing from ../shared/data is read.

    python scripts/train_qscorer.py --data runs/devset2 --out runs/qscorer \\
        --epochs 2 --batch-size 16 --threads 1 --max-minutes 35   # --device cuda on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def records(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["family"] == "fewshot":
            continue
        ctx = r["context"]
        pos = []
        for s in dict.fromkeys([r["evidence"], *r.get("support", [])]):
            i = ctx.find(s)
            if i < 0:  # whitespace differs (essays are re-spaced): match its first words
                i = ctx.find(" ".join(s.split()[:6]))
            if i >= 0:
                pos.append([i, i + len(s)])
        if pos:
            out.append({"question": r["question"], "context": ctx, "positives": pos})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("runs/devset2"))
    ap.add_argument("--out", default="runs/qscorer")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--limit", type=int, default=None, help="first N records")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=None, help="wall-clock cap on training")
    a = ap.parse_args()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ctxcomp.training.qscorer import ScorerTrainConfig, train_scorer

    recs = records(a.data / "train.jsonl")[: a.limit]
    cfg = ScorerTrainConfig(
        out=a.out,
        train_layers=a.train_layers,
        batch_size=a.batch_size,
        epochs=a.epochs,
        lr=a.lr,
        device=a.device,
        threads=a.threads,
        max_minutes=a.max_minutes,
    )
    with Progress(
        TextColumn("train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("train", total=1, loss=0.0)

        def progress(step: int, steps: int, loss: float) -> None:
            bar.update(task, completed=step, total=steps, loss=loss)

        rep = train_scorer(recs, cfg, progress=progress)
    print(json.dumps({"trained": rep["trained"], "history": rep["history"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
