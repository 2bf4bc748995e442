"""A tiny training run: loss goes down, checkpoints are written and resumed, the exported
delta loads as a compressor that holds its budget; the CLI reports skipped records."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ctxcomp.training.data import WordExample


def _synthetic(n: int, seed: int = 0) -> list[WordExample]:
    """Keep = capitalised words and numbers: learnable from the token alone."""
    rng = random.Random(seed)
    lower = [
        "the",
        "of",
        "and",
        "a",
        "to",
        "in",
        "is",
        "was",
        "for",
        "on",
        "that",
        "with",
        "as",
        "by",
        "it",
        "at",
        "from",
        "this",
        "be",
        "are",
    ]
    upper = [
        "Paris",
        "London",
        "Alice",
        "Bob",
        "Smith",
        "Tokyo",
        "Berlin",
        "Mary",
        "Google",
        "Nile",
    ]
    out = []
    for _ in range(n):
        words = [
            rng.choice(upper)
            if rng.random() < 0.3
            else (str(rng.randint(1, 999)) if rng.random() < 0.1 else rng.choice(lower))
            for _ in range(rng.randint(20, 60))
        ]
        out.append(WordExample(words, [int(w[0].isupper() or w.isdigit()) for w in words]))
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: thread synchronisation costs more than it saves (shared CI machines)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, minilm_path: str) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path)
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-base")
    transformers.BertForTokenClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_tiny_run_learns_checkpoints_and_resumes(tmp_path: Path, tiny_base: Path) -> None:
    from ctxcomp.training.trainer import TrainConfig, train

    data = _synthetic(48)
    val = _synthetic(6, seed=1)
    cfg = TrainConfig(
        base=str(tiny_base),
        out=str(tmp_path / "run"),
        train_layers=-1,
        max_len=64,
        batch_size=8,
        max_steps=24,
        lr=5e-3,
        eval_every=4,
        checkpoint_every=8,
        keep_checkpoints=2,
        device="cpu",
    )
    logs: list[str] = []
    res = train(data, val, cfg, log=logs.append)
    first, last = res.history[0]["val_loss"], res.history[-1]["val_loss"]
    assert last < first * 0.8, res.history
    cks = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert cks == ["step-0000016.safetensors", "step-0000024.safetensors"]
    # resume: continue the same run to 28 steps
    cfg.max_steps, cfg.resume = 28, True
    logs.clear()
    res2 = train(data, val, cfg, log=logs.append)
    assert any("resumed from step 24" in m for m in logs)
    assert res2.steps == 28 and res2.history[0]["step"] == 4  # history carried over
    assert (tmp_path / "run" / "checkpoints" / "step-0000028.safetensors").is_file()


def test_head_only_cached_and_export_loads(
    tmp_path: Path, tiny_base: Path, essays: dict[str, str]
) -> None:
    import ctxcomp
    from ctxcomp.errors import ModelLoadError
    from ctxcomp.models import is_delta_dir, load_delta_compressor
    from ctxcomp.training.trainer import TrainConfig, train

    cfg = TrainConfig(
        base=str(tiny_base),
        out=str(tmp_path / "run"),
        train_layers=0,
        keep_layers=1,
        head="mlp",
        head_hidden=16,
        max_len=64,
        batch_size=4,
        max_steps=20,
        lr=1e-2,
        eval_every=10,
        checkpoint_every=0,
        device="cpu",
    )
    res = train(_synthetic(24), _synthetic(6, seed=2), cfg, log=lambda m: None)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"] + 1e-6
    assert list((tmp_path / "run" / "cache").glob("features-*.safetensors"))
    mdir = tmp_path / "run" / "model"
    assert is_delta_dir(mdir)
    conf = json.loads((mdir / "config.json").read_text())
    assert conf["keep_layers"] == 1 and conf["base"]["path"] == str(tiny_base)
    with pytest.raises(ModelLoadError, match="base_path"):  # config.json cannot pick the base
        load_delta_compressor(mdir, device="cpu")
    comp = load_delta_compressor(mdir, base_path=tiny_base, device="cpu")
    text = essays["avg"][:3000]
    r = ctxcomp.compress(text, target_tokens=120, compressor=comp)
    assert 0 < r.compressed_tokens <= 120


def test_cli_trains_and_counts_skips(tmp_path: Path, tiny_base: Path) -> None:
    typer_testing = pytest.importorskip("typer.testing")
    import typer

    from ctxcomp.cli_train import train_app

    app = typer.Typer()

    @app.command()
    def noop() -> None:  # a second command, so "train" is mounted as a group like in ctxcomp.cli
        pass

    app.add_typer(train_app, name="train")
    recs = [{"words": e.words, "labels": e.labels} for e in _synthetic(12)]
    recs.append({"words": ["a", "b"], "labels": [1]})
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    args = [
        "train",
        str(p),
        "--out",
        str(tmp_path / "run"),
        "--base",
        str(tiny_base),
        "--max-steps",
        "3",
        "--max-len",
        "64",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--checkpoint-every",
        "2",
    ]
    r = typer_testing.CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "wrong label length" in r.output and "skipped 1" in r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["skipped_records"] == 1
    r = typer_testing.CliRunner().invoke(app, [*args, "--on-error", "fail"])
    assert r.exit_code == 2 and "d.jsonl:13" in r.output
