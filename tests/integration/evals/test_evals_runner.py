"""Runner: resumable rows, bad results lines, failing methods/readers, empty answers, report."""

from __future__ import annotations

import json

import pytest

from evals.longbench.data import Item
from evals.longbench.methods import Method, make_method
from evals.longbench.readers import ReaderError, ReaderOutput
from evals.longbench.report import write_report
from evals.longbench.results import read_rows
from evals.longbench.runner import RunConfig, RunStopped, run
from evals.longbench.tokens import get_tokenizer

CTX = (
    " ".join(f"Passage {i}: filler text number {i}." for i in range(300))
    + " The singer was Bob Dylan."
)


def _items():
    return [
        Item("hotpotqa", "h-0", CTX, "Who sang?", ["Bob Dylan"]),
        Item(
            "trec",
            "t-0",
            "Question: a ?\nType: Food\n" * 50,
            "Question: b ?\nType:",
            ["Food"],
            ["Food", "Animal"],
        ),
    ]


class FakeReader:
    name = "fake"
    window = 4096

    def __init__(self, answers=None, fail_on=None):
        self.calls = 0
        self.answers = answers or {}
        self.fail_on = fail_on

    def generate(self, prompt, task):
        self.calls += 1
        if self.fail_on and self.fail_on in prompt:
            raise ReaderError("HTTP 500 from fake after 3 attempts")
        return ReaderOutput(self.answers.get(task, "Bob Dylan\nmore"), 10, 0.0)


class Boom(Method):
    spec = "boom"

    def _compress(self, item, context, budget, tok):
        raise RuntimeError("kaboom")


def _cfg(tmp_path, **kw):
    return RunConfig(
        budgets=[50, 100],
        out_dir=tmp_path,
        tokenizer=get_tokenizer("cl100k_base"),
        progress=False,
        **kw,
    )


def test_resumable_second_run_skips(tmp_path):
    methods = [make_method(m) for m in ("original", "no_context", "head", "random")]
    reader = FakeReader()
    s1 = run(_items(), methods, _cfg(tmp_path, reader=reader))
    assert s1["done"] == 2 * (2 + 2 * 2) and s1["skipped"] == 0
    calls = reader.calls
    s2 = run(_items(), methods, _cfg(tmp_path, reader=reader))
    assert s2["done"] == 0 and s2["skipped"] == 12 and reader.calls == calls
    rows = read_rows(tmp_path / "results.jsonl")
    assert len(rows) == 12
    r = next(
        x for x in rows if x["method"] == "head" and x["task"] == "hotpotqa" and x["budget"] == 50
    )
    assert r["tokens_out"] <= 50 and r["tokens_in"] > 50 and r["config_hash"]
    assert r["answer"] == "Bob Dylan\nmore" and r["score"] == pytest.approx(0.8)  # P 2/3, R 1
    t = next(x for x in rows if x["task"] == "trec" and x["method"] == "original")
    assert t["score"] == 0.0  # first line "Bob Dylan" names no class
    # a new budget only adds its rows
    s3 = run(
        _items(),
        methods,
        RunConfig(
            budgets=[50, 100, 200],
            out_dir=tmp_path,
            tokenizer=get_tokenizer("cl100k_base"),
            progress=False,
            reader=reader,
        ),
    )
    assert s3["done"] == 2 * 2 and s3["skipped"] == 12


def test_malformed_result_lines_reported_and_rows_kept(tmp_path, capsys):
    run(_items(), [make_method("no_context")], _cfg(tmp_path))
    path = tmp_path / "results.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write('{"task": "hotpotqa", "item_id": "h-0", "meth')  # a crash mid-line
    rows = read_rows(path)
    assert len(rows) == 2
    assert f"{path}:3: malformed result line" in capsys.readouterr().err
    s = run(_items(), [make_method("no_context"), make_method("head")], _cfg(tmp_path))
    assert s["skipped"] == 2 and s["done"] == 4
    assert len(read_rows(path)) == 6  # the next row starts on a fresh line


def test_failing_method_written_as_error_row_and_retried(tmp_path, capsys):
    s = run(_items(), [Boom(), make_method("no_context")], _cfg(tmp_path))
    assert s["errors"] == 4 and s["done"] == 2 * (2 + 1)
    rows = read_rows(tmp_path / "results.jsonl")
    errs = [r for r in rows if r["error"]]
    assert len(errs) == 4 and errs[0]["error"] == "RuntimeError: kaboom"
    assert "kaboom" in capsys.readouterr().err
    s2 = run(_items(), [Boom(), make_method("no_context")], _cfg(tmp_path))
    assert s2["skipped"] == 2 and s2["done"] == 4  # error rows are retried, successes skipped
    with pytest.raises(RunStopped, match="kaboom"):
        run(_items(), [Boom()], _cfg(tmp_path / "stop", on_error="stop"))
    assert len(read_rows(tmp_path / "stop" / "results.jsonl")) == 1  # the failing row is kept


def test_reader_error_and_empty_answer(tmp_path, capsys):
    reader = FakeReader(answers={"trec": ""}, fail_on="Passage 0")
    run(_items(), [make_method("original")], _cfg(tmp_path, reader=reader))
    rows = {r["task"]: r for r in read_rows(tmp_path / "results.jsonl")}
    assert rows["hotpotqa"]["error"].startswith("ReaderError: HTTP 500")
    assert (
        rows["trec"]["warning"] == "reader returned an empty answer"
        and rows["trec"]["score"] == 0.0
    )
    err = capsys.readouterr().err
    assert "empty answer" in err and "HTTP 500" in err
    with pytest.raises(RunStopped, match="empty answer"):
        run(
            _items()[1:],
            [make_method("original")],
            _cfg(tmp_path / "s", reader=FakeReader(answers={"trec": " "}), on_error="stop"),
        )


def test_context_cap_and_proxies(tmp_path):
    run(
        _items()[:1], [make_method("original"), make_method("head")], _cfg(tmp_path, context_cap=60)
    )
    rows = read_rows(tmp_path / "results.jsonl")
    orig = next(r for r in rows if r["method"] == "original")
    assert orig["tokens_in"] <= 60 < orig["tokens_in_full"]
    assert orig["span_recall"] == 1.0  # the answer sits at the end: middle truncation keeps it
    head = next(r for r in rows if r["method"] == "head" and r["budget"] == 50)
    assert head["span_recall"] == 0.0


def test_report_tables_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    methods = [make_method(m) for m in ("original", "no_context", "head", "random")]
    run(_items(), methods, _cfg(tmp_path, reader=FakeReader()))
    path = write_report(tmp_path, [m.spec for m in methods])
    text = path.read_text()
    assert "| hotpotqa | " in text and "| *multi-doc QA* |" in text and "| **overall** |" in text
    assert "head@50" in text and "random@100" in text and "(1)" in text
    assert "| *QA + summarization* |" in text
    assert (tmp_path / "score_vs_budget.png").stat().st_size > 1000
    assert (tmp_path / "span_recall_vs_budget.png").exists()


def test_cli_end_to_end_minilongbench(tmp_path, mlb_dir, capsys):
    from evals.longbench.__main__ import main

    args = [
        "--data-dir",
        str(mlb_dir),
        "--tasks",
        "trec",
        "passage_count",
        "--limit",
        "1",
        "--methods",
        "no_context",
        "head",
        "--budgets",
        "500",
        "--ll-lm",
        "none",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-plots",
    ]
    assert main(args) == 0
    assert main(args) == 0
    assert "0 rows written, 4 skipped" in capsys.readouterr().out
    assert main([*args[:4], "nosuchtask", *args[5:]]) == 0  # unknown task reported, the rest runs
    assert "unknown LongBench task 'nosuchtask'" in capsys.readouterr().err
    assert main([*args[:3], "nosuchtask", *args[5:], "--on-error", "stop"]) == 2
    assert (
        main(
            [
                "--methods",
                "bogus",
                "--on-error",
                "stop",
                "--out",
                str(tmp_path / "x"),
                "--ll-lm",
                "none",
                "--data-dir",
                str(mlb_dir),
            ]
        )
        == 2
    )
    assert json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])["task"] == "trec"


def test_ll_proxy_in_runner_cached_and_limited(tmp_path, tiny_lm_dir):
    from evals.longbench.proxies import AnswerLogLikelihood

    scorer = AnswerLogLikelihood(tiny_lm_dir, window=256)
    items = [*_items(), Item("hotpotqa", "h-1", CTX, "Who?", ["Dylan"])]
    methods = [make_method(m) for m in ("original", "no_context", "head")]
    cfg = _cfg(tmp_path, ll_scorer=scorer, ll_limit=1)
    run(items, methods, cfg)
    rows = read_rows(tmp_path / "results.jsonl")
    by = {(r["item_id"], r["method"], r["budget"]): r for r in rows}
    assert by[("h-0", "original", None)]["ll_relative"] == pytest.approx(1.0)
    assert by[("h-0", "no_context", None)]["ll_relative"] == pytest.approx(0.0)
    head = by[("h-0", "head", 50)]
    assert head["ll"] is not None and head["ll_original"] == by[("h-0", "original", None)]["ll"]
    assert by[("h-1", "head", 50)]["ll"] is None  # only the first item per task
    assert by[("t-0", "head", 50)]["ll"] is not None
    cache_lines = (tmp_path / "ll_cache.jsonl").read_text().splitlines()
    assert len(cache_lines) == 4  # original + no_context for h-0 and t-0, computed once


def test_cli_download_failure_is_reported(tmp_path, monkeypatch, capsys):
    import evals.longbench.data as data
    from evals.longbench.__main__ import main

    def offline(dest):
        raise OSError("no network")

    monkeypatch.setattr(data, "download_longbench", offline)
    args = [
        "--data",
        "longbench",
        "--data-dir",
        str(tmp_path / "lb"),
        "--download",
        "--ll-lm",
        "none",
    ]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "downloading LongBench failed: OSError: no network" in capsys.readouterr().err
    assert main(["--data", "longbench", "--ll-lm", "none", "--out", str(tmp_path / "o")]) == 2
    assert "needs --data-dir" in capsys.readouterr().err
