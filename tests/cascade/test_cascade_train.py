"""The C3 trainer on tiny random models: variants, resume, checkpoints, bad records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cascade_helpers import tiny_lm

import ctxcomp
from ctxcomp.latent.cascade.layout import build, load_c3
from ctxcomp.latent.cascade.template import COMPACT
from ctxcomp.latent.cascade.train import CascadeTrainConfig, train
from ctxcomp.latent.cascade.train_data import DataError, make_samples, read_records

TEXT = "the theme and the thing then ended on the other hand, and then the end came. "


def records(tmp_path: Path, n: int = 6) -> list[Any]:
    p = tmp_path / "data.jsonl"
    lines = [json.dumps({"text": TEXT * (1 + i % 2)}) for i in range(n)]
    lines.append(
        json.dumps({"context": TEXT[:40], "question": "What ended?", "answer": "the thing"})
    )
    p.write_text("\n".join(lines) + "\n")
    recs, rep = read_records([p])
    assert rep.kept == n + 1
    return recs


def model(tok: Any) -> Any:
    return build(tiny_lm("llama", 32, seed=1), tiny_lm("qwen2", 48, seed=2), tok,
                 num_latents=4, template=COMPACT, chunk_tokens=24)  # fmt: skip


def cfg(out: Path, **kw: Any) -> CascadeTrainConfig:
    base: dict[str, Any] = dict(
        out=str(out),
        chunk_lengths=(16, 24),
        batch_size=2,
        max_steps=2,
        eval_every=1,
        checkpoint_every=1,
        lr=1e-3,
        latent_lr=1e-2,
        val_fraction=0.3,
    )
    base.update(kw)
    return CascadeTrainConfig(**base)


def weights(m: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("variant", ["frozen-decoder", "full"])
def test_variants_train_what_they_say(tmp_path: Path, tiny_tok: Any, variant: str) -> None:
    m = model(tiny_tok)
    dec0, enc0 = weights(m.decoder), weights(m.encoder)
    res = train(
        m, records(tmp_path), cfg=cfg(tmp_path / "run", variant=variant), log=lambda s: None
    )
    assert res.steps == 2 and res.samples_seen == 4 and len(res.history) == 2
    assert res.val_loss is not None and 0.0 <= (res.val_accuracy or 0.0) <= 1.0
    dec_changed = any(not torch.equal(dec0[k], v) for k, v in m.decoder.state_dict().items())
    assert dec_changed == (variant == "full")
    assert not torch.equal(enc0["query.weight"], m.encoder.query.weight)
    assert any(not torch.equal(enc0[k], v) for k, v in m.encoder.state_dict().items()
               if k.startswith("encoder."))  # fmt: skip
    loaded = load_c3(res.out, device="cpu")  # written in C3's layout
    torch.testing.assert_close(loaded.encoder.projector.weight, m.encoder.projector.weight)
    meta = json.loads((tmp_path / "run" / "train.json").read_text())
    assert meta["steps"] == 2 and meta["samples_seen"] == 4 and meta["seconds"] > 0
    ck = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert [p.name for p in ck] == ["step-0000001", "step-0000002"]
    assert {f.name for f in ck[-1].iterdir()} == {
        "state.json",
        "trainable.safetensors",
        "optimizer.safetensors",
    }  # no pickle anywhere


def test_resume_continues_exactly(tmp_path: Path, tiny_tok: Any) -> None:
    recs = records(tmp_path)
    straight = model(tiny_tok)
    train(straight, recs, cfg=cfg(tmp_path / "a", max_steps=3), log=lambda s: None)
    part = model(tiny_tok)
    train(part, recs, cfg=cfg(tmp_path / "b", max_steps=3, max_minutes=0.0), log=lambda s: None)
    resumed = model(tiny_tok)  # a fresh process: same seeds, then the checkpoint
    r = train(resumed, recs, cfg=cfg(tmp_path / "b", max_steps=3, resume=True), log=lambda s: None)
    assert r.steps == 3
    for (k, a), b in zip(
        straight.encoder.state_dict().items(), resumed.encoder.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_resume_refuses_another_variant(tmp_path: Path, tiny_tok: Any) -> None:
    recs = records(tmp_path)
    train(model(tiny_tok), recs, cfg=cfg(tmp_path / "r", max_steps=1), log=lambda s: None)
    with pytest.raises(ctxcomp.InputError, match="does not match this run's trainable weights"):
        train(model(tiny_tok), recs, cfg=cfg(tmp_path / "r", variant="full", resume=True),
              log=lambda s: None)  # fmt: skip


def test_bad_records_reported(tmp_path: Path, tiny_tok: Any) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(
        b'{"text": "fine text here"}\n'
        b"not json\n"
        b'{"text": ""}\n'
        b'{"text": 3}\n'
        b'{"context": "c", "question": "q"}\n'
        b"[1, 2]\n"
        b'{"text": "caf\xe9"}\n'
    )
    recs, rep = read_records([p])
    assert rep.read == 7 and rep.kept == 1 and rep.n_skipped == 6
    assert dict(rep.skipped) == {"bad JSON": 1, "empty field": 1, "bad field": 2,
                                 "missing field": 1, "not UTF-8": 1}  # fmt: skip
    assert any(w.endswith("bad.jsonl:2") for w, _ in rep.issues)
    with pytest.raises(DataError, match=r"bad\.jsonl:2: bad JSON"):
        read_records([p], on_error="fail")
    make_samples(recs, tiny_tok, chunk_lengths=[64], reconstruct="R", report=rep)
    assert rep.skipped["too short"] == 1 and rep.kept == 0
    with pytest.raises(ctxcomp.InputError, match="does not exist"):
        read_records([tmp_path / "nope.jsonl"])
    with pytest.raises(ctxcomp.InputError, match="variant must be one of"):
        CascadeTrainConfig(variant="half")


def test_samples_cut_chunks_of_the_given_lengths(tiny_tok: Any, tmp_path: Path) -> None:
    recs = records(tmp_path)
    s = make_samples(recs, tiny_tok, chunk_lengths=[16, 24], reconstruct="R")
    rec_samples = [x for x in s if x.instruction == "R"]
    assert rec_samples and all(len(x.context_ids) in (16, 24) for x in rec_samples)
    assert all(tiny_tok.decode(list(x.context_ids)) == x.target for x in rec_samples)
    qa = [x for x in s if x.instruction != "R"]
    assert [(x.instruction, x.target) for x in qa] == [("What ended?", "the thing")]
