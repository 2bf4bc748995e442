"""Training data readers: alignment of compressed text, bad records per policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctxcomp.training.data import DataError, align_compressed, read_examples


def _jsonl(path: Path, recs: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    return path


def test_align_marks_kept_words_in_order() -> None:
    orig = [
        "The",
        "quick",
        "brown",
        "fox,",
        "said",
        "Mr.",
        "Smith,",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "in",
        "2024.",
    ]
    comp = ["quick", "fox", "Smith", "jumps", "dog", "2024"]
    labels, matched = align_compressed(orig, comp)
    assert matched == len(comp)
    kept = [w for w, lab in zip(orig, labels) if lab]
    assert [w.strip(",.").lower() for w in kept] == [c.lower() for c in comp]
    assert len(labels) == len(orig)


def test_align_repeated_word_takes_next_occurrence() -> None:
    orig = ["the", "cat", "saw", "the", "dog", "and", "the", "bird"]
    labels, matched = align_compressed(orig, ["the", "the", "bird"])
    assert matched == 3
    assert labels == [1, 0, 0, 1, 0, 0, 0, 1]


def test_align_ignores_case_and_punctuation_and_respects_window() -> None:
    orig = ["Hello,"] + ["x"] * 20 + ["World!"]
    labels, matched = align_compressed(orig, ["hello", "world"], window=5)
    assert matched == 1 and labels[0] == 1 and labels[-1] == 0
    labels, matched = align_compressed(orig, ["hello", "world"], window=50)
    assert matched == 2 and labels[-1] == 1


def test_pairs_whole_and_chunked(tmp_path: Path) -> None:
    recs = [
        {
            "prompt": "Alice met Bob in Paris on Monday to sign the deal.",
            "compressed_prompt": "Alice met Bob Paris Monday sign deal.",
        },
        {
            "prompt": "ignored when chunk lists exist",
            "compressed_prompt": "ignored",
            "prompt_list": [
                "Speaker one: we approve the budget of 5 million.",
                "Speaker two: motion carries.",
            ],
            "compressed_prompt_list": ["approve budget 5 million.", "motion carries."],
        },
    ]
    exs, rep = read_examples([_jsonl(tmp_path / "p.jsonl", recs)])
    assert rep.kept == 2 and rep.n_skipped == 0
    assert sum(exs[0].labels) == 7 and len(exs[0].labels) == len(exs[0].words)
    assert exs[1].words[0] == "Speaker" and len(exs[1].words) == 13
    assert sum(exs[1].labels) == 6
    assert rep.aligned_words == rep.compressed_words == 13


def _bad_file(tmp_path: Path) -> Path:
    good = {"words": ["a", "b", "c"], "labels": [1, 0, 1]}
    lines = [
        json.dumps(good),
        json.dumps(
            {"prompt": "one two three four", "compressed_prompt": "alpha beta gamma"}
        ),  # misaligned
        json.dumps(
            {"prompt_list": ["one two", ""], "compressed_prompt_list": ["one", "x"]}
        ),  # empty chunk
        json.dumps({"words": ["a", "b"], "labels": [1]}),  # wrong length
        json.dumps({"prompt_list": ["a b"], "compressed_prompt_list": ["a", "b"]}),  # chunk count
        "{not json",
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"text": "caf\xe9 ok", "labels": [1, 1]}\n'
    p = tmp_path / "bad.jsonl"
    p.write_bytes(data)
    return p


def test_bad_records_skipped_with_reasons_and_counts(tmp_path: Path) -> None:
    p = _bad_file(tmp_path)
    warned: list[str] = []
    exs, rep = read_examples([p], on_error="skip", warn=warned.append)
    assert len(exs) == 1 and rep.kept == 1 and rep.read == 7
    assert rep.n_skipped == 6
    assert rep.skipped == {
        "misaligned pair": 1,
        "empty chunk": 1,
        "wrong label length": 1,
        "chunk count mismatch": 1,
        "bad JSON": 1,
        "not UTF-8": 1,
    }
    wheres = [w for w, _ in rep.issues]
    assert wheres == [f"{p}:{i}" for i in (2, 3, 4, 5, 6, 7)]
    assert len(warned) == 6 and all(str(p) in w for w in warned)
    s = rep.summary()
    assert "skipped 6" in s and "misaligned pair: 1" in s


@pytest.mark.parametrize("line", [2, 3, 4, 7])
def test_bad_records_fatal_policy_names_the_record(tmp_path: Path, line: int) -> None:
    p = _bad_file(tmp_path)
    lines = p.read_bytes().split(b"\n")
    p.write_bytes(lines[0] + b"\n" + lines[line - 1] + b"\n")
    with pytest.raises(DataError, match=rf"{p.name}:2: "):
        read_examples([p], on_error="fail")


def test_non_utf8_json_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(b'[{"text": "\xff\xfe", "labels": [1]}]')
    exs, rep = read_examples([p])
    assert exs == [] and rep.skipped == {"not UTF-8": 1}
    with pytest.raises(DataError, match="not UTF-8"):
        read_examples([p], on_error="fail")


def test_json_list_and_text_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text(
        json.dumps({"data": [{"text": "x  y\nz", "labels": [0, True, 1]}]}), encoding="utf-8"
    )
    exs, _rep = read_examples([p], fmt="labels")
    assert exs[0].words == ["x", "y", "z"] and exs[0].labels == [0, 1, 1]
    assert exs[0].where.endswith("d.json[0]")
