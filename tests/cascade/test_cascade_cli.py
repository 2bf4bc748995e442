"""``ctxcomp c3 train | compress | reconstruct`` on a tiny saved cascade."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ctxcomp.cli import app
from ctxcomp.latent import LatentPrompt
from ctxcomp.latent.cascade.layout import save_c3

TEXT = "the theme and the thing then ended on the other hand, and then the end came. " * 2


def test_compress_reconstruct_and_train(tmp_path: Path, tiny_c3: Any) -> None:
    model = save_c3(tiny_c3, tmp_path / "c3")
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    runner = CliRunner()
    out = tmp_path / "p.safetensors"
    r = runner.invoke(app, ["c3", "compress", str(model), str(doc), "--ratio", "0.5",
                            "-o", str(out), "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    lp = LatentPrompt.load(out)
    assert summary["latent_rows"] == lp.compressed_tokens == 4 * summary["chunks"]
    r = runner.invoke(app, ["c3", "reconstruct", str(model), str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["c3", "compress", str(model), str(doc), "--target-tokens", "2",
                            "-o", str(out), "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 2 and "error:" in r.output and "budget allows 2" in r.output
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": TEXT}) + "\n" for _ in range(3)) + "oops\n")
    r = runner.invoke(app, ["c3", "train", str(data), "-o", str(tmp_path / "run"), "--init",
                            str(model), "--chunk", "16", "--max-steps", "1", "--batch-size", "2",
                            "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["steps"] == 1 and res["skipped_records"] == 1
    assert (tmp_path / "run" / "model" / "llm1" / "config.json").is_file()
