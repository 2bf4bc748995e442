"""``ctxcomp batch`` end to end on a local Ray with 2 CPUs (one cluster for the session).

Every run compresses the same 24-row corpus with the embedded default pipeline and must
give, row by row, exactly what ``ctxcomp.compress`` gives: after a clean run, a resumed
run, an actor killed mid-run, and a driver killed mid-run (then resumed). Ray start-up and
each run's actors (a model load each) dominate the time: the runs are few.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import RATIO, assert_rows_match, read_jsonl, write_jsonl

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("ray")

import ctxcomp  # noqa: E402
from ctxcomp.batch import Fields, RunOptions, run_batch  # noqa: E402

FAST = RunOptions(batch_rows=4, commit_rows=4)  # small blocks and parts: many commits


def _run(src: Path, out: Path, **kw: Any) -> Any:
    kw.setdefault("options", FAST)
    kw.setdefault("fields", Fields(question="q"))
    return run_batch(src, out, ratio=RATIO, progress=False, **kw)


def _parts(out: Path) -> list[Path]:
    return sorted(out.with_name(out.name + ".ctxcomp-batch").glob("part-*.parquet"))


class _DieOnce(ctxcomp.Compressor):
    """The real pipeline, except that the process dies (``os._exit``, as on OOM or a lost
    node) on the first call with a row containing ``trigger``, once a part is committed:
    a marker file, consumed, makes it happen once across actor restarts."""

    name = "die-once"

    def __init__(self, inner: Any, trigger: str, marker: str, parts: str) -> None:
        super().__init__()
        self.inner, self.trigger, self.marker, self.parts = inner, trigger, marker, parts

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def compress_batch(self, prompts: Any, **kw: Any) -> Any:
        if any(self.trigger in p for p in prompts) and os.path.exists(self.marker):
            deadline = time.monotonic() + 120
            while not list(Path(self.parts).glob("part-*")) and time.monotonic() < deadline:
                time.sleep(0.1)
            try:
                os.unlink(self.marker)
            except FileNotFoundError:
                pass  # another actor consumed it
            else:
                os._exit(1)
        return self.inner.compress_batch(prompts, **kw)


def _die_once(config: Any, **kw: Any) -> _DieOnce:
    return _DieOnce(ctxcomp.build_pipeline(config), **kw)


@pytest.fixture(autouse=True)
def _pickle_by_value(ray_cluster: Any) -> None:
    """Ray's workers cannot import this test module: ship its code with the factory."""
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_jsonl_rows_equal_compress_with_rejects_and_rerun(corpus, expected, tmp_path):
    bad = b'{"id": "bad-type", "text": 5}\n{"id": "bad-utf8", "text": "caf\xe9"}\n'
    bad += b'{"id": "avg-0", "text": "a duplicate id"}\n'
    src = write_jsonl(tmp_path / "in.jsonl", corpus, extra=bad)
    out = tmp_path / "out.jsonl"
    s = _run(src, out)
    rows = read_jsonl(out)
    assert_rows_match(rows, expected)
    assert [r["id"] for r in rows] == [r["id"] for r in corpus]  # input order kept
    for row, given in zip(rows, corpus):
        assert (row["source"], row["n"], row.get("q")) == (
            given["source"],
            given["n"],
            given.get("q"),
        )
        assert "text" not in row
    assert list(rows[0])[:2] == ["id", "compressed_text"]
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    assert [(r["row"], r["id"], r["kind"]) for r in rejects] == [
        (24, "bad-type", "not_string"),
        (25, "bad-utf8", "invalid_utf8"),
        (26, "avg-0", "duplicate_id"),
    ]
    assert (s.input_rows, s.compressed, s.rejected, s.skipped, s.output_rows) == (27, 24, 3, 0, 24)
    assert s.original_tokens == sum(e.original_tokens for e in expected.values())
    assert s.compressed_tokens == sum(e.compressed_tokens for e in expected.values())
    assert (s.actors, s.threads_per_actor) == (2, 1)
    assert not _parts(out) and not out.with_name("out.jsonl.ctxcomp-batch").exists()

    before = out.read_bytes()
    again = _run(src, out)  # everything done: no actor starts, nothing changes
    assert (again.skipped, again.compressed, again.actors, again.rejected) == (24, 0, 0, 3)
    assert out.read_bytes() == before


def test_parquet_in_and_out_with_a_cache_file_per_actor(corpus, expected, tmp_path):
    src, out, cache = tmp_path / "in.parquet", tmp_path / "out.parquet", tmp_path / "cache"
    table = pa.table(
        {
            "id": [r["id"] for r in corpus],
            "text": [r["text"] for r in corpus],
            "q": pa.array([r.get("q") for r in corpus], pa.string()),
            "n": pa.array([r["n"] for r in corpus], pa.int16()),
            "at": pa.array([1_700_000_000 + r["n"] for r in corpus], pa.timestamp("s")),
        }
    )
    pq.write_table(table, src)
    opts = RunOptions(batch_rows=4, commit_rows=4, cache=str(cache))
    s = _run(src, out, options=opts)
    got = pq.read_table(out)
    given = pq.read_schema(src)  # (Parquet itself stores second timestamps as ms)
    assert got.schema.field("n").type == pa.int16()  # metadata types kept
    assert got.schema.field("at").type == given.field("at").type
    assert got.column("n").to_pylist() == list(range(24))
    assert_rows_match(got.to_pylist(), expected)
    assert s.compressed == 24 and s.rejected == 0
    # each actor claimed its own SQLite file (shared by nobody) and filled it
    files = sorted(cache.glob("actor-*.sqlite"))
    assert [f.name for f in files] == ["actor-0.sqlite", "actor-1.sqlite"]
    assert all(f.stat().st_size > 0 for f in files)


def test_an_actor_killed_mid_run_loses_and_duplicates_nothing(corpus, expected_plain, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", corpus)
    out = tmp_path / "out.jsonl"
    marker = tmp_path / "kill.marker"
    marker.touch()
    work = out.with_name(out.name + ".ctxcomp-batch")
    factory = functools.partial(
        _die_once, trigger=corpus[13]["text"][:60], marker=str(marker), parts=str(work)
    )
    s = _run(src, out, compressor_factory=factory, fields=Fields())
    assert not marker.exists()  # the actor did die once; Ray restarted it and retried
    assert s.compressed == 24 and s.rejected == 0
    assert_rows_match(read_jsonl(out), expected_plain)


def test_cli_killed_mid_run_then_resumed(ray_cluster, corpus, expected_plain, tmp_path):
    """A real kill (SIGKILL of the driver) at whatever moment it lands, then a re-run."""
    src = write_jsonl(tmp_path / "in.jsonl", corpus)
    out = tmp_path / "out.jsonl"
    address = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "ctxcomp", "batch", str(src), str(out), "--ratio", str(RATIO),
           "--ray-address", address, "--batch-rows", "2", "--commit-rows", "2", "--quiet"]  # fmt: skip
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 180
        while not _parts(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    s = _run(src, out, fields=Fields())  # the same job again, in this process
    assert s.skipped > 0 and s.skipped + s.compressed == 24
    assert_rows_match(read_jsonl(out), expected_plain)


def test_redis_cache_shared_by_all_actors(redis_url, corpus, expected_plain, tmp_path):
    from ctxcomp.cache import RedisStore

    src = write_jsonl(tmp_path / "in.jsonl", corpus[:8])
    out = tmp_path / "out.jsonl"
    opts = RunOptions(batch_rows=2, commit_rows=4, cache=redis_url)
    s = _run(src, out, options=opts, config={"namespace": "batch-test"}, fields=Fields())
    assert s.compressed == 8
    assert_rows_match(read_jsonl(out), {r["id"]: expected_plain[r["id"]] for r in corpus[:8]})
    store = RedisStore(redis_url)
    try:  # both actors wrote their windows to the one server
        assert store.info()["namespaces"]["batch-test"]["entries"] > 0
    finally:
        store.close()
