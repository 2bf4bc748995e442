"""Run the eval harness (python -m evals.longbench) with the embedded default as a method.

    python scripts/run_gate.py --methods random ctxcomp:default selective_context:smollm2 \
        llmlingua:smollm2 --tasks en-qa-fewshot --budgets 2000 3000 [harness options]

``ctxcomp:default`` (or ``ctxcomp:<delta dir>``) resolves to the shipped default model
directory; ctxcomp.load_compressor is routed to ctxcomp.models.load_delta_compressor for
delta directories (ctxcomp.load_compressor itself takes Hugging Face checkpoints).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EN_QA_FEWSHOT = [
    "narrativeqa",
    "qasper",
    "multifieldqa_en",
    "hotpotqa",
    "2wikimqa",
    "musique",
    "trec",
    "triviaqa",
    "samsum",
]


def main() -> int:
    import ctxcomp
    from ctxcomp.models import default_model_path, is_delta_dir, load_delta_compressor
    from evals.longbench import __main__ as harness
    from evals.longbench import models

    orig_load = ctxcomp.load_compressor

    def load(model: str, **kw):  # type: ignore[no-untyped-def]
        if is_delta_dir(model):
            return load_delta_compressor(model, **kw)
        return orig_load(model, **kw)

    ctxcomp.load_compressor = load  # type: ignore[assignment]
    orig_resolve = models.resolve_classifier_path

    def resolve(path: str) -> str:
        return str(default_model_path()) if path == "default" else orig_resolve(path)

    models.resolve_classifier_path = resolve
    argv = list(sys.argv[1:])
    if "--tasks" in argv and argv[argv.index("--tasks") + 1] == "en-qa-fewshot":
        i = argv.index("--tasks")
        argv[i + 1 : i + 2] = EN_QA_FEWSHOT
    return int(harness.main(argv))


if __name__ == "__main__":
    raise SystemExit(main())
