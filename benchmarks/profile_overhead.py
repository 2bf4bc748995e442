"""Where ctxcomp's time outside the model forward goes, stage by stage.

The model forward is memoised (the first call per batch shape runs the model, later ones
return its output), so what is timed is tokenising, analysis, batching, selection and
result building. Medians over ``--repeats`` compressions of the benchmark text.

    python benchmarks/profile_overhead.py --sizes 2000 8000 32000 [--repeats 15]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import _setup
    import numpy as np
    import torch

    import ctxcomp
    import ctxcomp.selection as sel

    torch.set_num_threads(a.threads)
    render = sel.render
    for n in a.sizes:
        sel.render = render
        text = _setup.text_of_tokens(n)
        comp = ctxcomp.TokenClassifierCompressor(
            str(_setup.checkpoint_dir()), device="cpu", score_memo_bytes=0
        )
        acc: dict[str, float] = collections.defaultdict(float)
        inner = comp._model.model.forward
        memo: dict[tuple[int, ...], Any] = {}

        def forward(*args: Any, _inner: Any = inner, _memo: Any = memo, **kw: Any) -> Any:
            key = tuple(kw["input_ids"].shape)
            if key not in _memo:
                _memo[key] = _inner(*args, **kw)
            return _memo[key]

        comp._model.model.forward = forward

        def wrap(obj: Any, name: str, label: str, _acc: Any = acc) -> None:
            f = getattr(obj, name)

            def timed(*args: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return f(*args, **kw)
                finally:
                    _acc[label] += time.perf_counter() - t

            setattr(obj, name, timed)

        wrap(comp, "_analyse", "analysis (all)")
        wrap(comp, "_tokenize", "  encoder tokenizer + conversion")
        wrap(comp, "_score", "scoring (batching, padding, softmax)")
        wrap(comp, "_select", "selection (all)")
        wrap(sel, "render", "  rendering (probes and final)")
        wrap(comp, "_result", "  result objects")
        for _ in range(3):
            comp.compress(text, ratio=0.33)
        acc.clear()
        ts = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            comp.compress(text, ratio=0.33)
            ts.append(time.perf_counter() - t)
        print(f"{n} tokens: {1000 * float(np.median(ts)):.2f} ms per compression (median)")
        for k, v in acc.items():
            print(f"  {k:40s} {1000 * v / a.repeats:7.2f} ms (mean)")


if __name__ == "__main__":
    main()
