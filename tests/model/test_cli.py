import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctxcomp.cli import app

runner = CliRunner()


def _run(args, input=None):
    return runner.invoke(app, args, input=input)


def test_compress_file_json_and_html(tmp_path, minilm_classifier_dir, essays):
    src = tmp_path / "essay.txt"
    src.write_text(essays["avg"], encoding="utf-8")
    html = tmp_path / "view.html"
    res = _run(
        [
            "compress",
            str(src),
            "--target-tokens",
            "500",
            "--model",
            str(minilm_classifier_dir),
            "--json",
            "--html",
            str(html),
        ]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["compressed_tokens"] <= 500 and out["target_tokens"] == 500
    assert isinstance(out["ratio"], float) and len(out["config_hash"]) == 16
    assert out["documents"][0]["kept_spans"]
    page = html.read_text(encoding="utf-8")
    assert page.count("class='w ") > 1000


def test_stdin_plain_text(minilm_classifier_dir, essays):
    res = _run(
        ["compress", "-", "--ratio", "0.3", "--model", str(minilm_classifier_dir)],
        input=essays["copy"],
    )
    assert res.exit_code == 0, res.output
    assert 0 < len(res.stdout) < len(essays["copy"])


@pytest.mark.parametrize(
    "args,data,msg",
    [
        (["--ratio", "0.5"], b"caf\xe9 au lait", "not valid UTF-8: byte 3"),
        (["--ratio", "0.5"], b"nul \x00 here", "control character '\\x00' at offset 4"),
        (["--ratio", "0.5"], b"  \n\t ", "empty or whitespace only"),
        (["--ratio", "1.5"], b"some text", "ratio must be in (0, 1]"),
        (["--target-tokens", "0"], b"some text", "target_tokens must be positive"),
        ([], b"some text", "exactly one of --ratio or --target-tokens"),
        (["--ratio", "0.5", "--reader", "nope"], b"some text", "unknown reader encoding"),
    ],
)
def test_bad_input_messages(args, data, msg, minilm_classifier_dir):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctxcomp",
            "compress",
            "-",
            *args,
            "--model",
            str(minilm_classifier_dir),
        ],
        input=data,
        capture_output=True,
    )
    assert res.returncode == 2
    err = " ".join(res.stderr.decode().split())
    assert msg in err, err


def test_missing_model_path_and_file(tmp_path):
    res = _run(["compress", str(tmp_path / "none.txt"), "--ratio", "0.5", "--model", "x"])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())
    f = tmp_path / "a.txt"
    f.write_text("hello world", encoding="utf-8")
    res = _run(["compress", str(f), "--ratio", "0.5", "--model", str(tmp_path / "missing-model")])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())
    res = _run(["compress", str(f), "--ratio", "0.5", "--config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "config file" in " ".join(res.output.split())
    bad = tmp_path / "bad.json"
    bad.write_text('{"colour": "red"}', encoding="utf-8")
    res = _run(["compress", str(f), "--ratio", "0.5", "--config", str(bad)])
    assert res.exit_code == 2 and "unknown pipeline config key" in " ".join(res.output.split())
