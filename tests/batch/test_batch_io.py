"""Reading, validating, committing and merging without Ray (fast)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from batch_helpers import read_jsonl, write_jsonl

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import ctxcomp  # noqa: E402
from ctxcomp.batch import Fields, Limits, run_batch  # noqa: E402
from ctxcomp.batch.io import scan  # noqa: E402
from ctxcomp.batch.output import finish  # noqa: E402
from ctxcomp.batch.resume import WorkDir, read_output  # noqa: E402
from ctxcomp.batch.schema import KEY, META, ROW, TEXT  # noqa: E402
from ctxcomp.batch.worker import claim_cache_slot, compress_table  # noqa: E402


def _scan_all(path: Path, fields: Fields | None = None, **kw):
    chunks = list(scan(path, fields or Fields(), **kw))
    table = pa.concat_tables([c.table for c in chunks])
    rejects = {r.row: r for c in chunks for r in c.rejects}
    return table, rejects, sum(c.rows for c in chunks), sum(c.skipped for c in chunks)


def test_jsonl_bad_rows_are_rejected_with_reason_and_id(tmp_path):
    good = {"id": "a", "text": "Hello there. A real sentence.", "tags": ["x"], "n": 1}
    lines = [
        json.dumps(good).encode(),
        b'{"id": "b", "text": 5}',  # 1 not_string
        b'{"id": "c"}',  # 2 missing_text
        b'{"id": "d", "text": "nul \\u0000 in it"}',  # 3 control_char
        b'{"id": "e", "text": "caf\xe9 au lait"}',  # 4 invalid_utf8 (raw byte)
        b'{"id": "f", "text": "lone \\ud800 surrogate"}',  # 5 invalid_utf8 (escape)
        b'{"id": "g", "text": "   "}',  # 6 empty_text
        b'{"id": "h", "text": "' + b"x" * 50 + b'"}',  # 7 too_large
        b'{"id": "a", "text": "again"}',  # 8 duplicate_id
        b'{"text": "no id"}',  # 9 missing_id
        b'{"id": 1.5, "text": "float id"}',  # 10 bad_id
        b'{"id": true, "text": "bool id"}',  # 11 bad_id
        b"[1, 2]",  # 12 not_object
        b"{not json",  # 13 invalid_json
        b"",  # 14 blank line: not a row
        b'{"id": "i", "text": "fine", "notes": "clashes"}',  # 15 field_clash
        b'{"id": 7, "text": "Integer ids are fine."}',  # 16 ok
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    table, rejects, rows, skipped = _scan_all(src, limits=Limits(max_chars=40))
    kinds = {row: r.kind for row, r in rejects.items()}
    assert kinds == {
        1: "not_string", 2: "missing_text", 3: "control_char", 4: "invalid_utf8",
        5: "invalid_utf8", 6: "empty_text", 7: "too_large", 8: "duplicate_id",
        9: "missing_id", 10: "bad_id", 11: "bad_id", 12: "not_object", 13: "invalid_json",
        15: "field_clash",
    }  # fmt: skip
    assert rejects[4].id == "e" and "byte" in rejects[4].reason  # id salvaged from a bad line
    assert rejects[8].reason == "duplicate id 'a' (first at row 0)"
    assert rejects[3].reason == "'text' has control character '\\x00' at offset 4"
    assert rows == 16 and skipped == 0  # the blank line is not a row
    assert table.column(KEY).to_pylist() == ["a", "7"]
    assert table.column(ROW).to_pylist() == [0, 16]
    meta = [json.loads(m) for m in table.column(META).to_pylist()]
    assert meta == [{"id": "a", "tags": ["x"], "n": 1}, {"id": 7}]  # all but the text


def test_done_ids_are_skipped_but_still_count_for_duplicates(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "a", "text": "one."}, {"id": "b", "text": "two."}, {"id": "a", "text": "dup."}],
    )
    table, rejects, rows, skipped = _scan_all(src, done={"a"})
    assert table.column(KEY).to_pylist() == ["b"]
    assert skipped == 1 and rows == 3
    assert [r.kind for r in rejects.values()] == ["duplicate_id"]


def test_parquet_rows_checked_and_column_types_kept(tmp_path):
    src = tmp_path / "in.parquet"
    texts = pa.array([b"Good text.", b"bad \xff byte", None, b"ctl \x07", b"Also good."])
    t = pa.table(
        {
            "doc": pa.array([10, 11, 12, 13, 10], pa.int32()),
            "body": texts,
            "score": pa.array([0.5, 1.0, 2.0, 3.0, 4.0], pa.float32()),
        }
    )
    pq.write_table(t, src)
    table, rejects, rows, _ = _scan_all(src, Fields(id="doc", text="body"))
    assert {r.row: r.kind for r in rejects.values()} == {
        1: "invalid_utf8", 2: "missing_text", 3: "control_char", 4: "duplicate_id",
    }  # fmt: skip
    assert rows == 5 and table.column(TEXT).to_pylist() == ["Good text."]
    assert table.schema.field("doc").type == pa.int32()  # metadata keeps its type
    assert table.schema.field("score").type == pa.float32()
    assert "body" not in table.column_names


@pytest.mark.parametrize(
    "columns,fields,msg",
    [
        ({"id": ["a"], "text": [1]}, Fields(), "column 'text' is int64, not a string column"),
        ({"id": ["a"]}, Fields(), "no column 'text'"),
        ({"id": [1.5], "text": ["x"]}, Fields(), "ids must be strings or integers"),
        ({"id": ["a"], "text": ["x"], "notes": ["y"]}, Fields(), "'notes' clashes"),
    ],
)
def test_parquet_schema_errors_name_the_problem(tmp_path, columns, fields, msg):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table(columns), src)
    with pytest.raises(ctxcomp.InputError, match=msg):
        list(scan(src, fields))


def test_fields_and_formats_are_checked(tmp_path):
    with pytest.raises(ctxcomp.InputError, match="must differ"):
        Fields(id="text")
    with pytest.raises(ctxcomp.InputError, match="clashes with an output column"):
        Fields(id="config_hash")
    with pytest.raises(ctxcomp.InputError, match="unknown format"):
        list(scan(write_jsonl(tmp_path / "in.csv", []), Fields()))


def test_cache_slots_are_exclusive_and_reused(tmp_path):
    a, fa = claim_cache_slot(tmp_path / "c")
    b, fb = claim_cache_slot(tmp_path / "c")
    assert (a.name, b.name) == ("actor-0.sqlite", "actor-1.sqlite")
    os.close(fa)  # the holder died: its slot is free again
    c, fc = claim_cache_slot(tmp_path / "c")
    assert c == a
    os.close(fb), os.close(fc)


class _Poisoned(ctxcomp.Compressor):
    """A real compressor that raises InputError on any text containing POISON."""

    name = "poisoned"

    def __init__(self, inner: ctxcomp.Compressor) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def config(self):
        return self.inner.config()

    def compress_batch(self, prompts, **kw):
        self.calls.append(len(prompts))
        if any("POISON" in p for p in prompts):
            raise ctxcomp.InputError("poisoned text")
        return self.inner.compress_batch(prompts, **kw)


def _internal(rows):
    return pa.table(
        {
            ROW: pa.array(range(len(rows)), pa.int64()),
            KEY: [str(i) for i in range(len(rows))],
            TEXT: [t for t, _ in rows],
            "ctxcomp.question": pa.array([q for _, q in rows], pa.string()),
            META: [json.dumps({"id": str(i)}) for i in range(len(rows))],
        }
    )


def test_compress_table_groups_by_question_and_isolates_a_failing_row(tiny_bert_compressor, essays):
    texts = [essays["avg"][i * 300 : i * 300 + 300] for i in range(5)]
    texts[2] = "POISON " + texts[2]
    rows = [
        (texts[0], None),
        (texts[1], None),
        (texts[2], None),
        (texts[3], "q?"),
        (texts[4], "q?"),
    ]
    comp = _Poisoned(tiny_bert_compressor)
    budget = ctxcomp.Budget(ratio=0.5)
    out = compress_table(comp, _internal(rows), budget, rows_per_call=4)
    status = out.column("ctxcomp.status").to_pylist()
    assert status == ["ok", "ok", "rejected", "ok", "ok"]
    assert out.column("ctxcomp.reason")[2].as_py() == "InputError: poisoned text"
    # calls: [0,1,2] fails, then one by one; [3,4] share their question
    assert comp.calls == [3, 1, 1, 1, 2]
    for i in (0, 1, 3, 4):
        exp = tiny_bert_compressor.compress(rows[i][0], budget=budget, question=rows[i][1])
        assert out.column("compressed_text")[i].as_py() == exp.text
    assert TEXT not in out.column_names and out.column_names[-1] == META


def _part(rows, status="ok", config_hash="h1"):
    """An internal result table as actors return it (JSONL metadata)."""
    n = len(rows)
    return pa.table(
        {
            ROW: pa.array([r["row"] for r in rows], pa.int64()),
            KEY: [str(r["id"]) for r in rows],
            "ctxcomp.status": [status] * n,
            "ctxcomp.kind": [None if status == "ok" else "compress_error"] * n,
            "ctxcomp.reason": [None if status == "ok" else "BudgetError: no"] * n,
            "compressed_text": [f"c{r['id']}" for r in rows],
            "original_tokens": pa.array([10] * n, pa.int64()),
            "compressed_tokens": pa.array([5] * n, pa.int64()),
            "target_tokens": pa.array([5] * n, pa.int64()),
            "kept_spans": pa.array([[[0, 3]]] * n, pa.list_(pa.list_(pa.int64()))),
            "notes": pa.array([[]] * n, pa.list_(pa.string())),
            "config_hash": [config_hash] * n,
            "budget": ["ratio=0.5"] * n,
            META: [json.dumps({"id": r["id"], **r.get("meta", {})}) for r in rows],
        }
    )


def test_merge_jsonl_to_parquet_infers_types_and_appends_without_duplicates(tmp_path):
    out = tmp_path / "out.parquet"
    work = WorkDir(out)
    work.open({"budget": "ratio=0.5"})
    work.commit(_part([{"row": 0, "id": "a", "meta": {"n": 1, "mixed": 1}}]))
    work.commit(_part([{"row": 1, "id": "b", "meta": {"n": 2.5, "mixed": "x", "new": True}}]))
    work.commit(_part([{"row": 2, "id": "c"}], status="rejected"))
    merged = finish(work, out, tmp_path / "rej.jsonl", "id", set())
    t = pq.read_table(out)
    assert t.column("id").to_pylist() == ["a", "b"]
    assert t.schema.field("n").type == pa.float64()  # ints and floats share a type
    assert t.column("mixed").to_pylist() == ["1", '"x"']  # no shared type: JSON text
    assert t.column("new").to_pylist() == [None, True]
    assert t.column_names[:3] == ["id", "compressed_text", "original_tokens"]
    assert read_jsonl(tmp_path / "rej.jsonl") == [
        {"row": 2, "id": "c", "kind": "compress_error", "reason": "BudgetError: no"}
    ]
    assert (merged.rows, merged.added, merged.rejects) == (2, 2, 1)
    assert not work.exists

    # a second run adds rows; a part left behind by a kill after the rename adds nothing twice
    ids, h, budget = read_output(out, "id")
    assert (ids, h, budget) == ({"a", "b"}, "h1", "ratio=0.5")
    work = WorkDir(out)
    work.open({"budget": "ratio=0.5"})
    work.commit(_part([{"row": 1, "id": "b", "meta": {"n": 2.5}}, {"row": 3, "id": "d"}]))
    merged = finish(work, out, tmp_path / "rej.jsonl", "id", ids)
    assert pq.read_table(out).column("id").to_pylist() == ["a", "b", "d"]
    assert merged.rows == 3 and read_jsonl(tmp_path / "rej.jsonl") == []


def test_a_killed_writer_leaves_no_half_part(tmp_path):
    out = tmp_path / "out.jsonl"
    work = WorkDir(out)
    work.open({"budget": "ratio=0.5"})
    work.commit(_part([{"row": 0, "id": "a"}]))
    (work.path / ".part-x-000002.parquet.tmp-123").write_bytes(b"PAR1 torn")  # killed mid-write
    work = WorkDir(out)
    work.open({"budget": "ratio=0.5"})  # a new run clears the torn file
    assert work.done_keys() == {"a"}
    assert [p.name for p in work.path.iterdir() if p.name.startswith(".")] == []
    finish(work, out, tmp_path / "rej.jsonl", "id", set())
    assert [r["id"] for r in read_jsonl(out)] == ["a"]


def test_resume_refuses_other_settings_and_foreign_files(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Some text here."}])
    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"id": "a", "text": "not ours"}])
    with pytest.raises(ctxcomp.InputError, match="not a ctxcomp batch output"):
        run_batch(src, out, ratio=0.5, progress=False)
    with pytest.raises(ctxcomp.InputError, match="not a ctxcomp batch output"):
        run_batch(src, out, ratio=0.5, progress=False, overwrite=True)
    assert read_jsonl(out) == [{"id": "a", "text": "not ours"}]  # untouched

    out.unlink()
    WorkDir(out).open({"budget": "ratio=0.3", "fields": ["id", "text", None], "pipeline": {}})
    with pytest.raises(ctxcomp.InputError, match="unfinished run with different settings"):
        run_batch(src, out, ratio=0.5, progress=False)
    with pytest.raises(ctxcomp.InputError, match="different file from the input"):
        run_batch(src, src, ratio=0.5, progress=False)


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "ray" else real(n, *a)
    )
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Some text."}])
    with pytest.raises(ctxcomp.MissingDependencyError, match=r"pip install 'ctxcomp\[batch\]'"):
        run_batch(src, tmp_path / "out.jsonl", ratio=0.5, progress=False)


def test_the_rejects_file_never_overwrites_the_input(tmp_path):
    src = write_jsonl(tmp_path / "data.rejects.jsonl", [{"id": "a", "text": "Some text."}])
    before = src.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(ctxcomp.InputError, match="would overwrite the input"):
            run_batch(src, tmp_path / "data.jsonl", ratio=0.5, progress=False, overwrite=overwrite)
    assert src.read_bytes() == before


def test_cli_names_bad_arguments(tmp_path):
    from typer.testing import CliRunner

    from ctxcomp.cli import app

    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Some text."}])
    runner = CliRunner()
    res = runner.invoke(app, ["batch", str(src), str(tmp_path / "out.jsonl")])
    assert res.exit_code == 2 and "exactly one of --ratio or --target-tokens" in res.output
    res = runner.invoke(app, ["batch", str(src), str(tmp_path / "out.csv"), "--ratio", "0.5"])
    assert res.exit_code == 2 and "unknown format" in res.output
    res = runner.invoke(app, ["batch", str(src), str(tmp_path / "o.jsonl"), "--ratio", "2"])
    assert res.exit_code == 2 and "ratio must be in (0, 1]" in res.output
    res = runner.invoke(app, ["batch", str(tmp_path / "no.jsonl"), "o.jsonl", "--ratio", "0.5"])
    assert res.exit_code == 2 and "does not exist" in res.output
