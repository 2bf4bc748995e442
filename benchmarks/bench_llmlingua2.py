"""ctxcomp vs llmlingua (LLMLingua-2 path) on one checkpoint and one text, CPU.

    python benchmarks/bench_llmlingua2.py [--sizes 2000 8000 32000] [--repeats 3]
                                          [--threads 2] [--fast auto]

Both sides use the same MiniLM token-classification checkpoint (built into a cache dir on
first run, see _setup.py), the same text (Paul Graham essays cut to about N cl100k tokens),
rate 0.33, the same force tokens and the same number of torch/ONNX Runtime threads.
Runs are interleaved (llmlingua, ctxcomp fp32, ctxcomp fast, rotating the order each
repeat) and medians reported. Time is split into the model forward (the model's own
call on both sides: llmlingua's ``model.forward``; ctxcomp's ``model.forward``, or the ONNX
Runtime session call of the fast path) and everything else (tokenising, chunking, batching
and padding, softmax, word merging, selection, detokenising). Peak memory (max RSS) is measured in a fresh subprocess per side
compressing the largest text once. Kept-word agreement is the fraction of the fp32
path's kept words (character spans) that the fast path also keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

FORCE_TOKENS = ["\n", "?", "!", "."]
RATE = 0.33
SIDES = ("llmlingua", "ctxcomp-fp32", "ctxcomp-fast")


def _threads(n: int) -> None:
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(n)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


class _Timed:
    """Accumulates the wall time of calls to a wrapped function."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.total = 0.0

    def __call__(self, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.total += time.perf_counter() - t


class Side:
    """One compressor under test: ``run(text)`` -> (total s, forward s, kept spans or None)."""

    def __init__(self, name: str, ckpt: str, fast_backend: str) -> None:
        self.name = name
        if name == "llmlingua":
            from llmlingua import PromptCompressor

            import ctxcomp

            ctxcomp.get_tokenizer("cl100k_base")  # seeds tiktoken's cache (offline)
            self.pc = PromptCompressor(model_name=ckpt, use_llmlingua2=True, device_map="cpu")
            self.timer = _Timed(self.pc.model.forward)
            self.pc.model.forward = self.timer
        else:
            import ctxcomp

            backend = "torch" if name == "ctxcomp-fp32" else fast_backend
            self.comp = ctxcomp.TokenClassifierCompressor(
                ckpt,
                device="cpu",
                backend=backend,
                force_tokens=tuple(FORCE_TOKENS),
                score_memo_bytes=0,  # every repeat runs the model (no in-process reuse)
            )
            # time the model call itself, as on llmlingua's side: ctxcomp's batching,
            # padding and softmax count as "other"
            m = self.comp._model
            if m._runner is not None:
                self.timer = _Timed(m._runner)
                m._runner = self.timer
            else:
                self.timer = _Timed(m.model.forward)
                m.model.forward = self.timer

    def run(self, text: str) -> tuple[float, float, Any]:
        self.timer.total = 0.0
        t = time.perf_counter()
        if self.name == "llmlingua":
            self.pc.compress_prompt(
                text,
                rate=RATE,
                force_tokens=FORCE_TOKENS,
                drop_consecutive=True,
                chunk_end_tokens=[".", "\n"],
            )
            total = time.perf_counter() - t
            kept = None
        else:
            r = self.comp.compress(text, ratio=RATE)
            total = time.perf_counter() - t
            s = r.scores[0]  # the agreement check is not part of the timed call
            kept = set(zip(s.starts[s.kept].tolist(), s.ends[s.kept].tolist()))
        return total, self.timer.total, kept


def _maxrss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: VmHWM of /proc/self/status (ru_maxrss would carry the parent's peak across
    fork + exec); elsewhere ru_maxrss.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def worker(args: argparse.Namespace) -> None:
    """Subprocess: load one side, compress the text once, print peak RSS as JSON."""
    import _setup

    _threads(args.threads)
    text = _setup.text_of_tokens(args.worker_size)
    side = Side(args.worker, str(_setup.checkpoint_dir()), args.fast)
    loaded = _maxrss_mb()
    total, fwd, _ = side.run(text)
    print(
        json.dumps({"loaded_mb": loaded, "peak_mb": _maxrss_mb(), "total": total, "forward": fwd})
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[2000, 8000, 32000], help="cl100k tokens"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--fast",
        default="auto",
        help="ctxcomp backend of the fast path; auto: torch-bf16 on CPUs with native "
        "bfloat16 (AVX512-BF16/AMX), else onnx",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--worker-size", type=int, default=32000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fast == "auto":
        from ctxcomp.compressors._hf import cpu_has_bf16

        args.fast = "torch-bf16" if cpu_has_bf16() else "onnx"
    if args.worker:
        worker(args)
        return
    import _setup

    _threads(args.threads)
    import ctxcomp

    ckpt = str(_setup.checkpoint_dir())
    reader = ctxcomp.get_tokenizer("cl100k_base")
    texts = {n: _setup.text_of_tokens(n) for n in args.sizes}
    load_start = os.getloadavg()[0]
    sides = {name: Side(name, ckpt, args.fast) for name in SIDES}  # first ONNX use exports here
    for s in sides.values():  # warm-up
        s.run(texts[min(args.sizes)])
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    agreement: dict[int, float] = {}
    for n in args.sizes:
        for rep in range(args.repeats):
            order = list(SIDES[rep % 3 :] + SIDES[: rep % 3])
            kept: dict[str, Any] = {}
            for name in order:
                total, fwd, k = sides[name].run(texts[n])
                rows.setdefault((name, n), []).append((total, fwd))
                kept[name] = k
            ref, got = kept["ctxcomp-fp32"], kept["ctxcomp-fast"]
            agreement[n] = len(ref & got) / max(len(ref), 1)
            print(
                f"  {n:>6} rep {rep + 1}: "
                + "  ".join(f"{nm} {rows[(nm, n)][-1][0]:.2f}s" for nm in SIDES),
                flush=True,
            )
    mem: dict[str, dict[str, float]] = {}
    if not args.no_memory:
        for name in SIDES:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                name,
                "--worker-size",
                str(max(args.sizes)),
                "--threads",
                str(args.threads),
                "--fast",
                args.fast,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            mem[name] = json.loads(out.stdout.strip().splitlines()[-1])

    def med(name: str, n: int, i: int) -> float:
        return statistics.median(r[i] for r in rows[(name, n)])

    def other(name: str, n: int) -> float:
        """Median over runs of each run's total minus its own forward time (the difference
        of the two medians would carry the forward's run-to-run jitter into it)."""
        return statistics.median(r[0] - r[1] for r in rows[(name, n)])

    print()
    print(
        f"ctxcomp {ctxcomp.__version__} vs llmlingua 0.2.2, LLMLingua-2 path, checkpoint MiniLM-L6 (token "
        f"classification, random head), rate {RATE}, CPU threads {args.threads}, fast backend {args.fast!r}, "
        f"median of {args.repeats} interleaved runs; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    hdr = (
        f"{'tokens':>7} | {'llmlingua s':>11} {'fwd':>6} {'other':>6} | {'fp32 s':>7} {'fwd':>6} {'other':>6} "
        f"{'other%':>6} | {'fast s':>7} {'fwd':>6} {'other':>6} {'other%':>6} | {'LL/fp32':>7} {'LL/fast':>7} "
        f"{'other LL/ctx':>12} | {'agree':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    for n in args.sizes:
        ll, llf, llo = med("llmlingua", n, 0), med("llmlingua", n, 1), other("llmlingua", n)
        fp, fpf, fpo = (
            med("ctxcomp-fp32", n, 0),
            med("ctxcomp-fp32", n, 1),
            other("ctxcomp-fp32", n),
        )
        fa, faf, fao = (
            med("ctxcomp-fast", n, 0),
            med("ctxcomp-fast", n, 1),
            other("ctxcomp-fast", n),
        )
        other_ratio = llo / max(fpo, 1e-9)
        print(
            f"{reader.count(texts[n]):>7} | {ll:>11.2f} {llf:>6.2f} {llo:>6.3f} | {fp:>7.2f} {fpf:>6.2f} "
            f"{fpo:>6.3f} {100 * fpo / fp:>5.1f}% | {fa:>7.2f} {faf:>6.2f} {fao:>6.3f} "
            f"{100 * fao / fa:>5.1f}% | {ll / fp:>6.2f}x {ll / fa:>6.2f}x {other_ratio:>11.1f}x | "
            f"{100 * agreement[n]:>5.1f}%"
        )
    if mem:
        print()
        print(
            f"peak memory (max RSS, fresh process per side, one compression of {max(args.sizes)} tokens):"
        )
        for name in SIDES:
            m = mem[name]
            print(
                f"  {name:<13} after load {m['loaded_mb']:>7.0f} MB   peak {m['peak_mb']:>7.0f} MB"
            )
    print()
    print(
        "columns: total wall seconds, forward seconds (medians), other = median of each run's total - forward; LL/x = llmlingua time / "
        "ctxcomp time; 'other LL/ctx' = llmlingua's non-forward time / ctxcomp fp32's; agree = share "
        "of the fp32 path's kept words also kept by the fast path"
    )


if __name__ == "__main__":
    main()
