"""``ctxcomp vision``: prune pictures from the command line (a tiny local encoder), write the
PNG view and JSON, calibrate DyMU thresholds, and fail with named errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
tr = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")

from ctxcomp.cli import app  # noqa: E402


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = tr.Dinov2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, mlp_ratio=2,
                          image_size=56, patch_size=14)  # fmt: skip
    out = tmp_path_factory.mktemp("enc") / "tiny-dinov2"
    tr.Dinov2Model(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("pics")
    rng = np.random.default_rng(0)
    out = []
    for i in range(2):
        p = d / f"pic{i}.png"
        Image.fromarray(rng.integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


def run(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_prune_json_and_png(encoder_dir: Path, pictures: list[Path], tmp_path: Path) -> None:
    png = tmp_path / "view.png"
    r = run("vision", "prune", pictures[0], "--method", "tome", "--ratio", "0.25",
            "--model", encoder_dir, "--image-size", "56", "--png", png, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["compressed_tokens"] == 4 and row["original_tokens"] == 16 and row["merged"]
    assert sum(row["sizes"]) == 16
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = run("vision", "prune", *pictures, "--method", "divprune", "--target-tokens", "5",
            "--model", encoder_dir, "--image-size", "56", "--png", tmp_path / "views")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "divprune" in r.stdout and sorted(p.name for p in (tmp_path / "views").iterdir()) == [
        "pic0.divprune.png", "pic1.divprune.png",
    ]  # fmt: skip


def test_calibrate_then_dymu(encoder_dir: Path, pictures: list[Path], tmp_path: Path) -> None:
    th = tmp_path / "th.json"
    r = run("vision", "calibrate", *pictures, "--ratio", "0.5", "--out", th,
            "--model", encoder_dir, "--image-size", "56")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(json.loads(th.read_text())["thresholds"]) == 3
    r = run("vision", "prune", pictures[1], "--method", "dymu", "--thresholds", th, "--ratio", "1",
            "--model", encoder_dir, "--image-size", "56", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip())["compressed_tokens"] <= 16
    r = run("vision", "prune", pictures[1], "--method", "dymu", "--thresholds", th, "--cap",
            "--target-tokens", "3", "--model", encoder_dir, "--image-size", "56", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip())["compressed_tokens"] <= 3


def test_recycle_and_tome_start(encoder_dir: Path, pictures: list[Path]) -> None:
    base = ("--model", encoder_dir, "--image-size", "56", "--json")
    r = run("vision", "prune", pictures[0], "--method", "divprune", "--recycle", "merge",
            "--target-tokens", "5", *base)  # fmt: skip
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip())
    assert row["compressed_tokens"] == 5 and sum(row["sizes"]) == 16 and row["dropped"] == 0
    r = run("vision", "prune", pictures[0], "--method", "tome", "--start", "1", "--ratio", "0.25",
            *base)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip())["compressed_tokens"] == 4


def test_methods_and_errors(encoder_dir: Path, pictures: list[Path], tmp_path: Path) -> None:
    r = run("vision", "methods")
    assert r.exit_code == 0 and "divprune" in r.stdout and "tome" in r.stdout
    base = ("--model", encoder_dir, "--image-size", "56")
    cases = [
        (("vision", "prune", tmp_path / "missing.png", "--ratio", "0.5", *base), "does not exist"),
        (("vision", "prune", pictures[0], *base), "exactly one of --ratio or --target-tokens"),
        (("vision", "prune", pictures[0], "--ratio", "1.5", *base), "ratio must be in (0, 1]"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--method", "nope", *base), "unknown visual method"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--method", "dymu", *base), "--thresholds"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--image-size", "50", "--model", encoder_dir), "multiple of the patch size"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--recycle", "all", *base), "recycle must be one of"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--method", "pooling", "--recycle", "merge", *base), "drops no tokens"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--start", "2", *base), "--start is a tome option"),
        (("vision", "prune", pictures[0], "--ratio", "0.5", "--cap", *base), "--cap is a dymu option"),
    ]  # fmt: skip
    for args, message in cases:
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert message in " ".join(r.output.split()), r.output
