"""The distillation trainer on a tiny random Llama: loss falls, checkpoints are safetensors +
JSON, resume continues exactly, bad records are reported; the CLI runs end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from latent_helpers import CORPUS, make_lm

import ctxcomp
from ctxcomp.latent.encoder import ConceptEncoder, EncoderConfig
from ctxcomp.latent.train import LatentTrainConfig, LatentTrainer, distill_loss
from ctxcomp.latent.train_data import QAExample, read_qa
from ctxcomp.training.data import DataError

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

ITEMS = [
    QAExample(CORPUS[i], "What does the text say?", CORPUS[i].split(".")[0], f"i{i}")
    for i in range(len(CORPUS))
]


def cfg(tmp: Path, **kw: Any) -> LatentTrainConfig:
    base = dict(
        lm="tiny",
        out=str(tmp),
        segment_tokens=8,
        min_rate=2.0,
        max_rate=4.0,
        batch_size=2,
        max_steps=6,
        lr=5e-3,
        warmup=1,
        eval_every=3,
        checkpoint_every=3,
    )
    base.update(kw)
    return LatentTrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def peaked(tok: Any) -> Any:
    """A tiny Llama with sharp output distributions (a random one is near uniform, which
    leaves the KL nothing to move)."""
    m = make_lm("llama", len(tok), seed=3)
    with torch.no_grad():
        m.lm_head.weight.mul_(30.0)
    return m


def test_training_lowers_the_loss_and_saves(tmp_path: Path, peaked: Any, tok: Any) -> None:
    def kl(enc: ConceptEncoder) -> float:
        _, st = distill_loss(
            peaked, tok, enc, ITEMS, [2.0] * 5, kl_weight=1, ce_weight=0, grad=False
        )
        return st["kl"]

    before = kl(ConceptEncoder(peaked, tok, EncoderConfig(8, 2.0, 4.0)))
    res = LatentTrainer(cfg(tmp_path, max_steps=9, lr=2e-2), log=lambda s: None).run(
        ITEMS, ITEMS[:1], model=peaked, tokenizer=tok
    )
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist) == 9 and "val_kl" in hist[-1]
    enc = ConceptEncoder.load(res["encoder"], peaked, tok)
    assert kl(enc) < before  # the trained encoder's reader is closer to the teacher
    assert enc.info.notes["samples"] == 18
    ck = sorted((tmp_path / "checkpoints").iterdir())
    assert [p.name for p in ck] == ["step-0000006", "step-0000009"]  # keeps the last two
    assert {p.name for p in ck[-1].iterdir()} == {
        "encoder.safetensors",
        "encoder.json",
        "optimizer.safetensors",
        "state.json",
    }


def test_resume_continues_exactly(tmp_path: Path, llama: Any, tok: Any) -> None:
    full = LatentTrainer(cfg(tmp_path / "a", max_steps=4), log=lambda s: None)
    full.run(ITEMS, model=llama, tokenizer=tok)
    part = LatentTrainer(cfg(tmp_path / "b", max_steps=2, checkpoint_every=2), log=lambda s: None)
    part.run(ITEMS, model=llama, tokenizer=tok)
    again = LatentTrainer(cfg(tmp_path / "b", max_steps=4), log=lambda s: None)
    again.run(ITEMS, resume=True, model=llama, tokenizer=tok)
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [round(h["loss"], 4) for h in ha] == [round(h["loss"], 4) for h in hb]


def test_distill_loss_zero_for_identical_reader(llama: Any, tok: Any) -> None:
    enc = ConceptEncoder(llama, tok)
    _, st = distill_loss(llama, tok, enc, ITEMS[:1], [2.0], kl_weight=1, ce_weight=0, grad=False)
    assert st["kl"] >= 0 and st["teacher_ll"] <= 0


def test_bad_records_reported(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    good = {"context": "A text.", "question": "Q?", "answer": "A"}
    p.write_bytes(
        b"\n".join(
            [
                json.dumps(good).encode(),
                b"{not json",
                json.dumps({**good, "answer": ""}).encode(),
                json.dumps({**good, "context": 3}).encode(),
                json.dumps({**good, "context": "word " * 50}).encode(),
                b"\xff\xfe",
            ]
        )
    )
    items, rep = read_qa([p], count_tokens=lambda s: len(s.split()), max_context_tokens=20)
    assert len(items) == 1 and rep.read == 6 and rep.kept == 1
    assert dict(rep.skipped) == {
        "bad JSON": 1,
        "empty field": 1,
        "bad field": 1,
        "too long": 1,
        "unreadable": 1,
    }
    with pytest.raises(DataError, match=":2: bad JSON"):
        read_qa([p], on_error="fail")
    with pytest.raises(ctxcomp.InputError, match="does not exist"):
        read_qa([tmp_path / "nope.jsonl"])


def test_cli_mounted() -> None:
    from typer.testing import CliRunner

    from ctxcomp.cli import app

    res = CliRunner().invoke(app, ["train-latent", "--help"])
    assert res.exit_code == 0 and "--encoder-layers" in res.output and "--resume" in res.output
    res = CliRunner().invoke(app, ["compress-latent", "--help"])
    assert res.exit_code == 0 and "--question" in res.output and "--cache" in res.output
    res = CliRunner().invoke(app, ["compress-latent", "/nonexistent/file.txt"])
    assert res.exit_code == 2 and "cannot read" in res.output
