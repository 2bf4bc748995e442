"""Latency of the question-aware coarse stage, as a ratio to the token-level stage.

Input: 24 passages (~8k cl100k tokens in all) from the Paul Graham essays, a question,
a 2,000-token budget. Measured in one process, interleaved, medians of N runs:
- coarse stage alone (document + sentence ranking with the MiniLM bi-encoder),
- token-level stage alone on the same documents (no coarse stage),
- coarse-to-fine end to end (the coarse stage drops documents before the model runs).

    python benchmarks/bench_coarse.py [--runs 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=int, default=2000)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    import ctxcomp
    from ctxcomp.coarse import CoarseToFineCompressor
    from ctxcomp.rankers import BiEncoderRanker, default_embedding_model

    fine = ctxcomp.TokenClassifierCompressor(
        str(_setup.checkpoint_dir()), device="cpu", score_memo_bytes=0
    )
    c2f = CoarseToFineCompressor(
        fine, BiEncoderRanker(default_embedding_model(), device="cpu"), vector_memo_bytes=0
    )
    reader = ctxcomp.get_tokenizer("cl100k_base")
    docs = []
    for e in _setup.essays():
        if len(docs) == 24:
            break
        docs.append(e[:1400])
    question = "Why did the author think Lisp would give the startup an advantage?"
    b = ctxcomp.Budget(target_tokens=a.budget)
    total = reader.count("\n\n".join(docs))
    # warm up every path once
    c2f.compress(docs, budget=b, question=question)
    fine.compress(docs, budget=b)
    t_coarse, t_fine, t_c2f = [], [], []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        c2f._coarse(
            [ctxcomp.Document(d) for d in docs], question, reader.count(question), b, reader
        )
        t_coarse.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fine.compress(docs, budget=b)
        t_fine.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = c2f.compress(docs, budget=b, question=question)
        t_c2f.append(time.perf_counter() - t0)
    m = statistics.median
    print(
        f"input: {len(docs)} documents, {total} cl100k tokens, budget {a.budget}, threads {a.threads}, runs {a.runs}"
    )
    print(f"coarse stage alone          {m(t_coarse):7.3f} s")
    print(f"token-level stage alone     {m(t_fine):7.3f} s")
    print(
        f"coarse-to-fine end to end   {m(t_c2f):7.3f} s   (kept {len(docs) - len(r.dropped_documents)} of {len(docs)} documents)"
    )
    print(f"coarse / token-level ratio  {m(t_coarse) / m(t_fine):7.3f}")
    print(f"end-to-end c2f / token-only {m(t_c2f) / m(t_fine):7.3f}")


if __name__ == "__main__":
    main()
