"""The evaluation loop: items x methods x budgets -> JSONL rows, resumable."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxcomp import Document

from .config import CATEGORY
from .data import Item
from .methods import Method
from .metrics import score_item
from .proxies import answer_span_recall, ll_for, relative_ll
from .results import RowWriter, read_rows, row_key
from .truncation import middle_truncate


class RunStopped(RuntimeError):
    """Raised with on_error='stop' after the failing row has been written."""


@dataclass
class RunConfig:
    budgets: Sequence[int]
    out_dir: Path
    reader: Any = None  # an object with .generate(prompt, task) and .name, or None
    tokenizer: Any = None  # budget / reader tokenizer (.count/.encode/.decode/.name)
    ll_scorer: Any = None  # proxies.AnswerLogLikelihood or None
    span_short_max: int = 5
    context_cap: int | None = None
    on_error: str = "skip"  # or "stop"
    progress: bool = True
    ll_tasks: set[str] | None = None  # tasks with the LL proxy (None: all)
    ll_limit: int | None = None  # LL proxy on the first N items per task only
    stats: dict[str, int] = field(default_factory=lambda: {"done": 0, "skipped": 0, "errors": 0})


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


class _LLCache:
    """Per-item LL of the original context and of no context (independent of method/budget)."""

    def __init__(self, path: Path, lm: str, window: int) -> None:
        self.writer_path = path
        self.tag = f"{lm}|{window}"
        self.values: dict[tuple[str, str, str], float | None] = {}
        for r in read_rows(path, warn=True) if path.exists() else []:
            if r.get("tag") == self.tag:
                self.values[(r["task"], r["item_id"], r["method"])] = r.get("ll")

    def get(self, item: Item, which: str, compute: Any) -> float | None:
        k = (item.task, item.id, which)
        if k not in self.values:
            v = compute()
            self.values[k] = v
            with RowWriter(self.writer_path) as w:
                w.write(
                    {
                        "task": item.task,
                        "item_id": item.id,
                        "method": which,
                        "tag": self.tag,
                        "ll": v,
                    }
                )
        return self.values[k]


def run(items: Sequence[Item], methods: Sequence[Method], cfg: RunConfig) -> dict[str, int]:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "results.jsonl"
    done = {row_key(r) for r in read_rows(rows_path) if not r.get("error")}
    tok = cfg.tokenizer
    reader_name = getattr(cfg.reader, "name", None)
    ll_cache = (
        _LLCache(out / "ll_cache.jsonl", cfg.ll_scorer.lm, cfg.ll_scorer.window)
        if cfg.ll_scorer
        else None
    )
    jobs = [
        (it, m, b)
        for it in items
        for m in methods
        for b in ([None] if m.budget_free else list(cfg.budgets))
    ]
    todo = [
        j
        for j in jobs
        if (j[0].task, j[0].id, j[1].spec, j[2], j[1].config_hash, reader_name) not in done
    ]
    cfg.stats["skipped"] += len(jobs) - len(todo)
    if len(jobs) != len(todo):
        print(
            f"resuming: {len(jobs) - len(todo)} of {len(jobs)} rows already done", file=sys.stderr
        )
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="longbench", unit="row", file=sys.stderr)
    # the LL proxy runs on a fixed subset: the first ll_limit items of each chosen task
    ll_items: set[tuple[str, str]] = set()
    if cfg.ll_scorer is not None:
        per_task: dict[str, int] = {}
        for it in items:
            if cfg.ll_tasks is not None and it.task not in cfg.ll_tasks:
                continue
            if cfg.ll_limit is not None and per_task.get(it.task, 0) >= cfg.ll_limit:
                continue
            per_task[it.task] = per_task.get(it.task, 0) + 1
            ll_items.add((it.task, it.id))
    capped: dict[tuple[str, str], tuple[str, int, int]] = {}
    with RowWriter(rows_path) as writer:
        for item, method, budget in todo:
            key = (item.task, item.id)
            if key not in capped:
                full = tok.count(item.context)
                ctx = item.context
                if cfg.context_cap and full > cfg.context_cap:
                    ctx = middle_truncate(ctx, tok, cfg.context_cap)
                capped[key] = (ctx, full, tok.count(ctx))
            ctx, full_tokens, tokens_in = capped[key]
            use_ll = key in ll_items
            row: dict[str, Any] = {
                "task": item.task,
                "category": CATEGORY[item.task],
                "language": item.language,
                "item_id": item.id,
                "method": method.spec,
                "budget": budget,
                "config_hash": method.config_hash,
                "reader": reader_name,
                "tokenizer": getattr(tok, "name", None),
                "tokens_in": tokens_in,
                "tokens_in_full": full_tokens,
                "tokens_out": None,
                "over_budget": None,
                "compression_seconds": None,
                "answer": None,
                "reader_seconds": None,
                "score": None,
                "span_recall": None,
                "ll": None,
                "ll_original": None,
                "ll_no_context": None,
                "ll_relative": None,
                "error": None,
                "warning": None,
            }
            stop_msg = None
            try:
                t0 = time.perf_counter()
                text, row["config_hash"] = ctx, method.config_hash
                if ctx.strip():  # the library's compressors take no empty context
                    out = method.compress(
                        Document(ctx, {"item": item}),
                        target_tokens=budget if budget is not None else tokens_in,
                        question=(item.input or None) if method.question_aware else None,
                    )
                    text, row["config_hash"] = out.text, out.config_hash
                row["compression_seconds"] = round(time.perf_counter() - t0, 4)
                row["tokens_out"] = tok.count(text)
                row["over_budget"] = bool(budget is not None and row["tokens_out"] > budget)
                row["span_recall"] = answer_span_recall(
                    text, item.answers, item.language, cfg.span_short_max
                )
                if use_ll:
                    sc = cfg.ll_scorer
                    assert ll_cache is not None
                    row["ll_original"] = ll_cache.get(
                        item,
                        "original",
                        lambda sc=sc, item=item, ctx=ctx: ll_for(
                            sc, item.prompt(ctx), item.answers
                        ),
                    )
                    row["ll_no_context"] = ll_cache.get(
                        item,
                        "no_context",
                        lambda sc=sc, item=item: ll_for(sc, item.prompt(""), item.answers),
                    )
                    if method.spec == "original":  # the original context as the LL proxy sees it
                        row["ll"] = row["ll_original"]
                    elif not text:
                        row["ll"] = row["ll_no_context"]
                    else:
                        row["ll"] = ll_for(sc, item.prompt(text), item.answers)
                    row["ll_relative"] = relative_ll(
                        row["ll"], row["ll_original"], row["ll_no_context"]
                    )
                if cfg.reader is not None:
                    ans = cfg.reader.generate(item.prompt(text), item.task)
                    row["answer"] = ans.text
                    row["reader_seconds"] = round(ans.seconds, 3)
                    row["score"] = score_item(item.task, ans.text, item.answers, item.all_classes)
                    if not ans.text.strip():
                        row["warning"] = "reader returned an empty answer"
                        _warn(f"{item.id} {method.spec}@{budget}: reader returned an empty answer")
                        if cfg.on_error == "stop":
                            stop_msg = row["warning"]
            except Exception as e:  # a failing item never takes the run down unless asked to
                row["error"] = f"{type(e).__name__}: {e}"
                cfg.stats["errors"] += 1
                _warn(f"{item.id} {method.spec}@{budget}: {row['error']}")
                if cfg.on_error == "stop":
                    stop_msg = row["error"]
            row["timestamp"] = round(time.time(), 3)
            writer.write(row)
            cfg.stats["done"] += 1
            if bar is not None:
                bar.update(1)
            if stop_msg is not None:
                if bar is not None:
                    bar.close()
                raise RunStopped(f"stopped at {item.id} {method.spec}@{budget}: {stop_msg}")
    if bar is not None:
        bar.close()
    return cfg.stats
