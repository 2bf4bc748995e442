"""Many questions over one document: what a second question costs next to the first.

The default pipeline (embedded default model, MiniLM bi-encoder coarse stage, backend
"auto") compresses one long document (Paul Graham essays joined, cut to ``--tokens`` cl100k
tokens) for a first question, then for a second, different one. The document's sentence
embeddings and window keep probabilities are computed for the first and reused for the
second (ctxcomp/reuse.py). Both pipelines are warmed first on another text (models loaded,
shapes traced), so the first question's time is the document's own cost. Measured in one run:

- first question, same pipeline;
- second question, same pipeline (in-process reuse);
- second question on a new pipeline that shares a SQLite segment cache with one that
  answered the first (reuse across processes), next to its own first question;
- whether each second answer equals a fresh pipeline's answer to that question.

    python benchmarks/bench_repeat_questions.py [--tokens 30000] [--target 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _setup

Q1 = "What does the author say about how startups should raise money from investors?"
Q2 = "Why do some programming languages become popular among hackers?"
WARM_Q = "What is the essay about?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=30000)
    ap.add_argument("--target", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    import ctxcomp
    from ctxcomp.pipeline import build

    reader = ctxcomp.get_tokenizer("cl100k_base")
    essays = _setup.essays()
    # the document: the essays from the 20th on, cut to --tokens; the warm-up text: the first 6
    doc = _cut("\n\n".join(essays[20:] + essays[:20]), a.tokens, reader)
    warm = "\n\n".join(essays[:6])

    def pipeline(cache: str | None = None) -> Any:
        p = build(cache=cache) if cache else build()
        p.compress(warm, target_tokens=a.target, question=WARM_Q)  # load, trace, warm
        return p

    def timed(p: Any, q: str) -> tuple[float, str]:
        t = time.perf_counter()
        r = p.compress(doc, target_tokens=a.target, question=q)
        return time.perf_counter() - t, r.text

    n = reader.count(doc)
    print(f"document: {n} cl100k tokens; target {a.target}; {a.threads} threads")
    same = pipeline()
    t1, _ = timed(same, Q1)
    t2, text2 = timed(same, Q2)
    fresh_q2 = timed(pipeline(), Q2)[1]
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "cache.sqlite")
        first = pipeline(path)
        c1, _ = timed(first, Q1)
        second = pipeline(path)  # a new process would see the same: an empty memo, the file
        c2, ctext2 = timed(second, Q2)
    rows = [
        ("first question (no cache)", t1, t1),
        ("second question, same pipeline", t2, t1),
        ("first question, SQLite cache (cold)", c1, c1),
        ("second question, new pipeline, same cache", c2, c1),
    ]
    print(f"{'':45s} {'seconds':>8s} {'/ first':>8s}")
    for name, t, ref in rows:
        print(f"{name:45s} {t:8.2f} {t / ref:8.3f}")
    print(f"second answers equal a fresh pipeline's: {text2 == fresh_q2 and ctext2 == fresh_q2}")


def _cut(text: str, n_tokens: int, reader: Any) -> str:
    starts = reader.token_starts(text)
    if n_tokens >= starts.size:
        return text
    end = int(starts[n_tokens])
    cut = text.rfind("\n", 0, end)
    return text[: cut if cut > 0 else end]


if __name__ == "__main__":
    main()
