"""Run compression methods over the development set: answer-span recall per family and
budget, and the answer log-likelihood proxy on a fixed subset. Rows are appended to
``<out>/rows.jsonl`` (resumable: a row already written for the same item, method, config
and budget is skipped); ``report`` prints the tables."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.longbench.data import Item
from evals.longbench.methods import Method, MethodOutput, _hash, make_method
from evals.longbench.proxies import answer_span_recall

from .build import FAMILIES


def load(
    path: Path, families: Sequence[str] | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    out, per = [], defaultdict(int)
    for r in rows:
        if families and r["family"] not in families:
            continue
        if limit is not None and per[r["family"]] >= limit:
            continue
        per[r["family"]] += 1
        out.append(r)
    return out


def compress_item(m: Method, it: Item, context: str, budget: int) -> Any:
    """One method on one dev item: the pipeline with its documents and notes, every other
    method through the library's compressor contract (the item rides in the metadata)."""
    if isinstance(m, Pipeline):
        return m.compress_item(it, context, budget)
    from ctxcomp import Document

    question = it.input if m.question_aware else None
    return m.compress(Document(context, {"item": it}), target_tokens=budget, question=question)


def as_item(r: dict[str, Any]) -> Item:
    task = "hotpotqa" if r["documents"] else "multifieldqa_en"
    if r["family"] == "fewshot":
        task = "trec"
    return Item(
        task=task, id=r["id"], context=r["context"], input=r["question"], answers=r["answers"]
    )


class Pipeline(Method):
    """``pipeline[:key=value,...]``: what a user gets from ``ctxcomp.compress(context,
    target_tokens=..., question=...)`` — ``ctxcomp.config.build(**overrides)`` (the embedded
    default model, the coarse stage); a multi-document context is passed as its documents.
    ``pipeline-noq``: the same without the question."""

    def __init__(self, spec: str, overrides: dict[str, Any], question: bool = True) -> None:
        self.spec = spec
        self.question = question
        extra = dict(overrides.get("options", {}))
        # qscorer=<delta dir>[,qs_pool=x]: the coarse stage's sentence scores reranked by the
        # question-conditioned scorer (evaluation only; not a shipped option)
        self.qscorer = extra.pop("qscorer", None)
        self.qs_pool = float(extra.pop("qs_pool", 2.0))
        self.overrides = (
            {**overrides, "options": extra}
            if extra
            else {k: v for k, v in overrides.items() if k != "options"}
        )
        self.embedder = MemoEmbedder()
        self.comp: Any = self._build(self.overrides)
        self._unprotected: Any = None

    def _build(self, overrides: dict[str, Any]) -> Any:
        if self.qscorer is None:
            return _make(overrides, self.embedder)
        from ctxcomp.qscorer import QuestionScorer

        c = _make(overrides, self.embedder, _reranked_class())
        c.scorer = QuestionScorer(str(self.qscorer))
        c.qs_pool = self.qs_pool
        return c

    @property
    def config_hash(self) -> str:
        return str(self.comp.config_hash)

    def compress_item(self, item: Item, context: str, budget: int) -> MethodOutput:
        """The pipeline on one dev item (its documents when it has them), with notes."""
        from ctxcomp.errors import BudgetError

        docs = getattr(item, "documents", None)
        q = item.input if self.question else None
        t0 = time.perf_counter()
        note = ""
        for c in (self.comp, self._unprotected):
            if isinstance(c, Reranked):
                c.pool_tokens = self.qs_pool * budget
        try:
            res = self.comp.compress(docs or context, target_tokens=budget, question=q)
        except BudgetError as e:
            # protected spans (code, markdown) over the budget: until protected spans become
            # droppable units (issue 14 part 1), measure with protection off, and say so
            note = f"BudgetError, protection off: {e}"
            un = self.unprotected()
            if isinstance(un, Reranked):
                un.pool_tokens = self.qs_pool * budget
            res = un.compress(docs or context, target_tokens=budget, question=q)
        out = MethodOutput(
            res.text,
            time.perf_counter() - t0,
            str(res.config_hash),
            note="; ".join((note, *res.notes) if note else res.notes),
        )
        return out

    def unprotected(self) -> Any:
        if self._unprotected is None:
            from ctxcomp.text.protect import Protection

            off = Protection(code=False, urls=False, json=False, markdown=False)
            opts = {**self.overrides.get("options", {}), "protection": off}
            ov = {**self.overrides, "options": opts}
            self._unprotected = self._build(ov)
        return self._unprotected


def _make(overrides: dict[str, Any], embedder: Any, cls: Any = None) -> Any:
    """``ctxcomp.config.build(**overrides)``, window scores cached on disk (variants and
    budgets share the model's work) and the coarse stage's sentence embeddings memoised."""
    from ctxcomp import CoarseToFineCompressor
    from ctxcomp.config import build

    c = build(**{"cache": "runs/dev-cache.sqlite", **overrides})
    if not hasattr(c, "fine"):
        return c
    return (cls or CoarseToFineCompressor)(
        c.fine,
        embedder,
        order=c.order,
        coarse_factor=c.coarse_factor,
        sentence_level=c.sentence_level,
        doc_weight=c.doc_weight,
        sentence_weight=c.sentence_weight,
        relevance=dataclasses.replace(c.relevance),
        kind_bonus=c.kind_bonus,
    )


class Reranked:
    """Mixin over ``CoarseToFineCompressor``: its sentence scores (bi-encoder + signals)
    reranked by ``ctxcomp.qscorer.rerank`` — the best sentences up to ``pool_tokens`` (set
    per call: ``qs_pool`` x the budget) are read by the question-conditioned scorer and
    ordered by base + keep probability, ahead of the rest (evaluation only)."""

    scorer: Any = None
    qs_pool: float = 2.0
    pool_tokens: float = 4000.0

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = super().config()  # type: ignore[misc]
        return {**cfg, "qscorer": self.scorer.fingerprint(), "qs_pool": self.qs_pool}

    def sentence_relevance(self, question: str, texts: list[str], sc: Any) -> Any:
        from ctxcomp.qscorer import rerank

        out = super().sentence_relevance(question, texts, sc)  # type: ignore[misc]
        return rerank(self.scorer, question, texts, out, self.pool_tokens) if out else out


def _reranked_class() -> Any:
    from ctxcomp import CoarseToFineCompressor

    return type("RerankedCoarse", (Reranked, CoarseToFineCompressor), {})


class MemoEmbedder:
    """The default bi-encoder ranker with a memo of text embeddings, in process and on disk
    (``runs/dev-emb.sqlite``, keyed by the text's sha1; the dev set asks several questions
    at two budgets over each context, and variants share contexts): same scores, less time."""

    name = "bi-encoder"

    def __init__(self, path: str = "runs/dev-emb.sqlite") -> None:
        import sqlite3

        from ctxcomp.rankers import BiEncoderRanker

        self.r = BiEncoderRanker()
        self.memo: dict[str, Any] = {}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (k TEXT PRIMARY KEY, v BLOB)")

    def fingerprint(self) -> str:
        return str(self.r.fingerprint())

    def embed(self, texts: Sequence[str]) -> Any:
        import hashlib

        import numpy as np

        todo = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if todo:
            keys = {t: hashlib.sha1(t.encode()).hexdigest() for t in todo}
            for i in range(0, len(todo), 500):
                part = todo[i : i + 500]
                q = ",".join("?" * len(part))
                found = dict(
                    self.db.execute(
                        f"SELECT k, v FROM emb WHERE k IN ({q})", [keys[t] for t in part]
                    )
                )
                for t in part:
                    if keys[t] in found:
                        self.memo[t] = np.frombuffer(found[keys[t]], np.float32)
            new = [t for t in todo if t not in self.memo]
            if new:
                embs = self.r.embed(new)
                for t, e in zip(new, embs):
                    self.memo[t] = e
                self.db.executemany(
                    "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                    [(keys[t], np.asarray(e, np.float32).tobytes()) for t, e in zip(new, embs)],
                )
                self.db.commit()
        if len(self.memo) > 200_000:
            self.memo.clear()
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def score(self, question: str, texts: Sequence[str]) -> Any:
        return self.r.score(question, texts)


def parse_overrides(arg: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    from dataclasses import fields

    from ctxcomp.config import PipelineConfig

    names = {f.name for f in fields(PipelineConfig)}
    for part in filter(None, arg.split(",")):
        k, _, v = part.partition("=")
        val: Any = v
        for conv in (int, float):
            try:
                val = conv(v)
                break
            except ValueError:
                pass
        if v in ("true", "false"):
            val = v == "true"
        (out if k in names else extra)[k.strip()] = val
    coarse = {k: extra.pop(k) for k in list(extra) if k in _COARSE}
    rel = {k[4:]: coarse.pop(k) for k in list(coarse) if k.startswith("rel_")}
    if rel:
        coarse["relevance"] = rel
    if extra:
        out["options"] = extra
    if coarse:
        out["coarse_options"] = coarse
    return out


_COARSE = {
    "doc_weight",
    "sentence_weight",
    "kind_bonus",
    "sentence_level",
    "rel_lexical",
    "rel_neighbor",
    "rel_document",
    "rel_fewshot",
}


def method(spec: str) -> Method:
    name, _, arg = spec.partition(":")
    if name in ("pipeline", "pipeline-noq"):
        return Pipeline(spec, parse_overrides(arg), question=name == "pipeline")
    return make_method(spec)


def run(
    items: list[dict[str, Any]],
    specs: Sequence[str],
    budgets: Sequence[int],
    out: Path,
    ll_lm: str | None = None,
    ll_limit: int = 0,
) -> None:
    import ctxcomp

    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            done.add((r["id"], r["method"], r["config_hash"], r["budget"]))
    tok = ctxcomp.get_tokenizer("cl100k_base")
    ll = None
    if ll_lm and ll_limit:
        from evals.longbench.proxies import AnswerLogLikelihood

        ll = AnswerLogLikelihood(ll_lm, window=4096)
    per_fam: dict[str, int] = defaultdict(int)
    ll_ids = set()
    for r in items:
        if per_fam[r["family"]] < ll_limit:
            ll_ids.add(r["id"])
            per_fam[r["family"]] += 1
    methods = [method(s) for s in specs]
    from tqdm import tqdm

    bar = tqdm(total=len(items) * len(methods) * len(budgets), desc="devset", file=sys.stderr)
    with path.open("a", encoding="utf-8") as f:
        for r in items:
            it = as_item(r)
            it.documents = r["documents"]  # type: ignore[attr-defined]
            for m in methods:
                for b in budgets:
                    bar.update(1)
                    if (r["id"], m.spec, m.config_hash, b) in done:
                        continue
                    o = compress_item(m, it, r["context"], b)
                    n = tok.count(o.text)
                    row = {
                        "id": r["id"],
                        "family": r["family"],
                        "split": r["split"],
                        "method": m.spec,
                        "config_hash": m.config_hash,
                        "budget": b,
                        "tokens_in": r["tokens"],
                        "tokens_out": n,
                        "over_budget": n > b,
                        "seconds": round(o.seconds, 3),
                        "span_recall": answer_span_recall(o.text, r["answers"]) or 0.0,
                        "ll": ll(it.prompt(o.text), r["answers"][0])
                        if ll and r["id"] in ll_ids
                        else None,
                        "note": o.note,
                    }
                    f.write(json.dumps(row) + "\n")
                    f.flush()
    bar.close()


def report(out: Path, specs: Sequence[str] | None = None) -> str:
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    # latest config per (method): rows of other configs of the same spec are older runs
    last_cfg = {r["method"]: r["config_hash"] for r in rows}
    rows = [r for r in rows if r["config_hash"] == last_cfg[r["method"]]]
    if specs:
        rows = [r for r in rows if r["method"] in specs]
    fams = [f for f in FAMILIES if any(r["family"] == f for r in rows)]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    lines = []
    for measure, fmt in (("span_recall", "{:.1f}"), ("ll", "{:.3f}")):
        cell: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        for r in rows:
            v = r.get(measure)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                cell[(r["method"], r["family"], r["budget"])].append(
                    100 * v if measure == "span_recall" else v
                )
        if not cell:
            continue
        lines.append(f"\n{measure} (mean (n))\n")
        lines.append("| method | budget | " + " | ".join(fams) + " | mean |")
        lines.append("|---|---:|" + "---:|" * (len(fams) + 1))
        for m in methods:
            for b in budgets:
                vals = [cell.get((m, fam, b), []) for fam in fams]
                if not any(vals):
                    continue
                means = [sum(v) / len(v) for v in vals if v]
                cells = [f"{fmt.format(sum(v) / len(v))} ({len(v)})" if v else "-" for v in vals]
                lines.append(
                    f"| {m} | {b} | "
                    + " | ".join(cells)
                    + f" | {fmt.format(sum(means) / len(means))} |"
                )
    secs: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        secs[r["method"]].append(r["seconds"])
    lines.append(
        "\nmean seconds per compression: "
        + ", ".join(f"{m} {sum(v) / len(v):.2f}" for m, v in secs.items())
    )
    over = sum(r["over_budget"] for r in rows)
    lines.append(f"rows over budget: {over} of {len(rows)}")
    return "\n".join(lines)


__all__ = ["_hash", "load", "report", "run"]
