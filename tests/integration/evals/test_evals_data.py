"""Template splitting of every MiniLongBench item; official JSONL loading and bad input."""

from __future__ import annotations

import json

import pytest

from evals.longbench.config import MAX_NEW_TOKENS, PROMPTS, TASKS
from evals.longbench.data import (
    DataError,
    build_prompt,
    load_minilongbench,
    load_official,
    split_prompt,
)


def test_all_237_minilongbench_items_split_cleanly(mlb_dir):
    res = load_minilongbench(mlb_dir)
    assert res.issues == []
    assert len(res.items) == 237
    assert {it.task for it in res.items} == set(TASKS)
    for it in res.items:
        with open(mlb_dir / f"MiniLongBench_{it.task}.json", encoding="utf-8") as f:
            raw = json.load(f)[it.id.rsplit("-", 1)[1]]
        assert it.prompt() == raw["origin_prompt"], it.id  # exact round trip
        assert it.context.strip(), it.id
        tpl = PROMPTS[it.template_task]
        assert ("{input}" in tpl) == bool(it.input.strip()) or it.task == "repobench-p", it.id
        assert it.answers and all(isinstance(a, str) for a in it.answers)
        if it.task in ("trec", "lsht"):
            assert it.all_classes
    by_task = {t: [i for i in res.items if i.task == t] for t in TASKS}
    assert all(i.template_task == "hotpotqa" for i in by_task["qasper"])
    # few-shot inputs are the final example; repobench-p's input is the in-file code
    assert all(
        i.input.startswith("Question: ") and i.input.endswith("Type:") for i in by_task["trec"]
    )
    assert all(i.input.startswith("Dialogue: ") for i in by_task["samsum"])
    assert all(i.input.strip() for i in by_task["repobench-p"])
    # the question is never inside the context for QA tasks
    for t in ("hotpotqa", "narrativeqa", "multifieldqa_en", "qmsum"):
        assert all(i.input and not i.context.endswith(i.input) for i in by_task[t])


def test_split_prompt_rejects_foreign_prompt():
    with pytest.raises(ValueError, match="prefix"):
        split_prompt("hotpotqa", "hello {context}")
    p = build_prompt("narrativeqa", "CTX {with braces}", "Q?")
    assert split_prompt("narrativeqa", p) == ("CTX {with braces}", "Q?")


def test_max_new_tokens_and_templates_cover_all_tasks():
    assert set(MAX_NEW_TOKENS) == set(TASKS) and len(TASKS) == 21
    assert MAX_NEW_TOKENS["gov_report"] == 512 and MAX_NEW_TOKENS["hotpotqa"] == 32


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_official_jsonl_bad_lines_reported_with_file_and_line(tmp_path, capsys):
    good = {"input": "q?", "context": "c", "answers": ["a"], "_id": "x1", "dataset": "hotpotqa"}
    _write(
        tmp_path / "hotpotqa.jsonl",
        [
            json.dumps(good),
            "{not json",
            json.dumps({"input": "q", "answers": ["a"]}),  # no context
            json.dumps({**good, "_id": "x4"}),
        ],
    )
    res = load_official(tmp_path, ["hotpotqa"])
    assert [i.id for i in res.items] == ["x1", "x4"]
    msgs = [str(i) for i in res.issues]
    assert msgs[0].endswith(
        "hotpotqa.jsonl:2: malformed JSON: Expecting property name enclosed in double quotes"
    )
    assert "hotpotqa.jsonl:3: missing field context" in msgs[1]
    err = capsys.readouterr().err
    assert "hotpotqa.jsonl:2" in err and "hotpotqa.jsonl:3" in err
    with pytest.raises(DataError, match=r"hotpotqa.jsonl:2"):
        load_official(tmp_path, ["hotpotqa"], on_error="stop")


def test_unknown_task_and_longbench_e(tmp_path):
    (tmp_path / "data").mkdir()
    row = {
        "input": "Question: x\nType:",
        "context": "c",
        "answers": ["Food"],
        "all_classes": ["Food"],
        "length": 10,
    }
    _write(tmp_path / "data" / "trec_e.jsonl", [json.dumps(row)])
    res = load_official(tmp_path, ["trec", "nosuchtask"], longbench_e=True)
    assert (
        len(res.items) == 1 and res.items[0].all_classes == ["Food"] and res.items[0].length == 10
    )
    assert any("unknown LongBench task 'nosuchtask'" in str(i) for i in res.issues)
    with pytest.raises(DataError, match="unknown LongBench task"):
        load_official(tmp_path, ["nosuchtask"], on_error="stop")


def test_minilongbench_dir_env_override(tmp_path, monkeypatch):
    from evals.longbench.data import default_minilongbench_dir

    monkeypatch.setenv("CTXCOMP_MINILONGBENCH", str(tmp_path))
    assert default_minilongbench_dir() == tmp_path
    res = load_minilongbench(None, ["trec"])
    assert res.items == [] and "file not found" in str(res.issues[0])
