"""Bad input is a clear error, the same through the API and the CLI; numpy budgets work;
the output keeps the input's line endings; configs and output paths fail before the work."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ctxcomp
from ctxcomp import Budget, BudgetError, InputError
from ctxcomp.cli import app, read_text
from ctxcomp.result import as_documents
from tests.invariants import check_result

C0 = [chr(i) for i in range(32)] + ["\x7f"]
ACCEPTED = set("\t\n\v\f\r")
_SAFE = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=30)


@pytest.fixture(scope="module")
def prose(essays: dict[str, str]) -> str:
    return essays["avg"][:5000]


# -- one text policy -------------------------------------------------------------------------


def _outcome(fn, *args):
    try:
        fn(*args)
    except InputError as exc:
        m = re.search(r"at offset (\d+)", str(exc))
        return ("rejected", int(m.group(1)) if m else None)
    return ("accepted", None)


@settings(max_examples=150, deadline=None)
@given(before=_SAFE, ch=st.sampled_from(C0), after=_SAFE)
def test_api_and_cli_accept_and_reject_the_same_characters(before: str, ch: str, after: str):
    from ctxcomp.validate import check_question

    text = "word " + before + ch + after + " end"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.txt"
        p.write_bytes(text.encode("utf-8"))
        cli = _outcome(read_text, str(p))
    api = _outcome(as_documents, [text])
    question = _outcome(check_question, text)
    want = ("accepted", None) if ch in ACCEPTED else ("rejected", text.index(ch))
    assert cli == api == question == want, (ch, cli, api, question)


def test_api_names_the_character_and_where(minilm_compressor, prose) -> None:
    with pytest.raises(InputError, match=r"'\\x1b' at offset 8 \(line 1, column 9\)"):
        minilm_compressor.compress("colour: \x1b[31mred " + prose, ratio=0.5)
    with pytest.raises(InputError, match=r"document 1 contains control character '\\x00'"):
        minilm_compressor.compress([prose, "a\x00b"], ratio=0.5)
    with pytest.raises(InputError, match="the question contains control character"):
        minilm_compressor.compress(prose, ratio=0.5, question="what\x07?")


@pytest.mark.parametrize("where", ["question", "document", "second document"])
def test_lone_surrogates_are_input_errors(minilm_compressor, prose, where: str) -> None:
    bad = "who won in \udc80?"
    kw: dict = {"ratio": 0.5}
    if where == "question":
        prompt, kw["question"] = prose, bad
        msg = "the question contains an invalid character, the lone surrogate"
    elif where == "document":
        prompt, msg = bad + prose, "document 0 contains an invalid character, the lone surrogate"
    else:
        prompt, msg = [prose, bad], "document 1 contains an invalid character, the lone surrogate"
    with pytest.raises(InputError, match=msg):
        minilm_compressor.compress(prompt, **kw)
    with pytest.raises(InputError, match=msg):  # the default pipeline, coarse stage included
        ctxcomp.compress(prompt, compressor=minilm_compressor, **kw)


def test_cli_question_with_a_control_character_exits_2(tmp_path, minilm_classifier_dir) -> None:
    src = tmp_path / "a.txt"
    src.write_text("A short text about trains and stations. " * 20, encoding="utf-8")
    args = ["compress", str(src), "--ratio", "0.5", "--model", str(minilm_classifier_dir)]
    r = CliRunner().invoke(app, [*args, "--question", "why\x1b?"])
    assert r.exit_code == 2 and "the question contains control character" in r.output


# -- numpy budgets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"target_tokens": np.int64(300)},
        {"target_tokens": np.int32(300)},
        {"target_tokens": np.uint16(300)},
        {"ratio": np.float32(0.3)},
        {"ratio": np.float64(0.3)},
    ],
)
def test_numpy_scalars_are_budgets(minilm_compressor, prose, kw) -> None:
    r = minilm_compressor.compress(prose, **kw)
    b = Budget(**kw)
    assert type(b.ratio if b.ratio is not None else b.target_tokens) in (int, float)
    assert r.compressed_tokens <= b.resolve(r.original_tokens)
    json.dumps(r.to_dict())  # plain Python numbers all the way


@pytest.mark.parametrize(
    "kw",
    [
        {"ratio": np.bool_(True)},
        {"target_tokens": np.bool_(True)},
        {"target_tokens": True},
        {"ratio": np.float64("nan")},
        {"ratio": np.float32("inf")},
        {"target_tokens": np.float64(300.0)},
        {"target_tokens": np.int64(0)},
        {"ratio": np.float16(1.5)},
    ],
)
def test_bad_numpy_budgets_are_budget_errors(kw) -> None:
    with pytest.raises(BudgetError):
        Budget(**kw)


# -- line endings --------------------------------------------------------------------------------

_BAD = {"\r\n": re.compile(r"\r(?!\n)|(?<!\r)\n"), "\r": re.compile(r"\n"), "\n": re.compile(r"\r")}


@pytest.mark.parametrize("ending", ["\r\n", "\r", "\n"])
def test_output_keeps_the_input_line_ending(minilm_compressor, essays, ending: str) -> None:
    docs = [essays[k][:1500].replace("\n", ending) for k in ("avg", "copy", "addiction")]
    reader = ctxcomp.get_tokenizer("cl100k_base")
    per_chunk = copy.copy(minilm_compressor)
    per_chunk.options = dataclasses.replace(per_chunk.options, mode="per_chunk")
    cases = [
        (comp, prompt, kw)
        for prompt in (docs[0], docs)
        for comp, kw in (
            (minilm_compressor, {"ratio": 0.3}),
            (minilm_compressor, {"target_tokens": 10**6}),  # returned unchanged
            (per_chunk, {"ratio": 0.3}),
        )
    ]
    for comp, prompt, kw in cases:
        texts = [prompt] if isinstance(prompt, str) else prompt
        r = comp.compress(prompt, **kw)
        assert not _BAD[ending].search(r.text), (ending, kw, r.text[:200])
        assert not _BAD[ending].search(r.separator)
        if ending != "\n":
            assert ending in r.text  # line breaks survive, in the input's form
        check_result(r, texts, reader)


def test_line_ending_of_mixed_input_is_the_most_used_one() -> None:
    from ctxcomp.newlines import document_separator, line_ending

    assert line_ending(["a\r\nb\r\nc\nd"]) == "\r\n"
    assert line_ending(["a\rb\rc\r\nd"]) == "\r"
    assert line_ending(["a\nb\r\nc"]) == "\n"
    assert line_ending(["no breaks"]) == "\n"
    assert document_separator("\n\n", ["x\r\ny"]) == "\r\n\r\n"
    assert document_separator(" | ", ["x\r\ny"]) == " | "


# -- configs and output paths fail before the work ------------------------------------------


@pytest.mark.parametrize(
    "name,body,msg",
    [
        (
            "p.json",
            '{"mode": "global",\n "cache": }',
            r"not valid JSON: .* \(at line 2, column 11\)",
        ),
        ("p.toml", '[ctxcomp]\nmode = "global"\nranker = \n', r"not valid TOML: .*line 3"),
        ("p.toml", b"mode = '\xff'", "is not UTF-8"),
        ("p.json", "[1, 2]", "must hold a mapping"),
        ("p.json", '{"coarse_factor": "big"}', "'coarse_factor' must be a number, got 'big'"),
        ("p.toml", "coarse = 1", "'coarse' must be true or false"),
        ("p.json", '{"force_tokens": "."}', "force_tokens must be a list of strings"),
        ("p.json", '{"cache": 5}', "'cache' must be a string or a SegmentCache or null"),
        ("p.json", '{"modle": "x"}', r"unknown pipeline config key\(s\) \['modle'\]"),
    ],
)
def test_malformed_configs_name_the_file_and_place(tmp_path, name, body, msg) -> None:
    p = tmp_path / name
    p.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(InputError, match=msg) as e:
        ctxcomp.PipelineConfig.from_file(p)
    assert str(p) in str(e.value)
    src = tmp_path / "in.txt"
    src.write_text("Some words to compress here. " * 10, encoding="utf-8")
    r = CliRunner().invoke(app, ["compress", str(src), "--ratio", "0.5", "--config", str(p)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().startswith("error:") and str(p) in r.output


def _no_build(*a, **k):
    raise AssertionError("the pipeline was built although the output path is unusable")


@pytest.mark.parametrize("target", ["missing/dir/view.html", "afile/view.html", "adir"])
def test_html_into_an_unusable_path_fails_before_any_work(tmp_path, monkeypatch, target) -> None:
    import ctxcomp.pipeline

    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    src = tmp_path / "in.txt"
    src.write_text("Some words to compress here. " * 10, encoding="utf-8")
    monkeypatch.setattr(ctxcomp.pipeline, "build", _no_build)
    html = tmp_path / target
    r = CliRunner().invoke(app, ["compress", str(src), "--ratio", "0.5", "--html", str(html)])
    assert r.exit_code == 2, r.output
    assert "--html" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("cache", ["adir", "afile/c.sqlite", "notes.txt"])
def test_unusable_cache_paths_in_a_config_exit_2(tmp_path, minilm_classifier_dir, cache) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notes.txt").write_text("my notes\n")
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"cache": str(tmp_path / cache), "coarse": False}))
    src = tmp_path / "in.txt"
    src.write_text("Some words to compress here. " * 10, encoding="utf-8")
    args = ["compress", str(src), "--ratio", "0.5", "--config", str(cfg)]
    r = CliRunner().invoke(app, [*args, "--model", str(minilm_classifier_dir)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert str(tmp_path / cache) in r.output
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"
