"""Compressor methods on tiny random models: ctxcomp, the llmlingua workarounds."""

from __future__ import annotations

import os

import pytest

from evals.longbench.data import Item
from evals.longbench.tokens import get_tokenizer

TEXT = " ".join(f"Sentence {i} says that item {i} costs {i * 3} dollars." for i in range(120))


@pytest.fixture(scope="module")
def tiny_classifier_dir(tiny_bert, tmp_path_factory):
    """The shared tiny random BERT token classifier (tests/conftest.py), saved to a dir."""
    model, tok = tiny_bert
    d = tmp_path_factory.mktemp("tiny_cls")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def test_ctxcomp_method_holds_budget(tiny_classifier_dir):
    ctxcomp = pytest.importorskip("ctxcomp")
    if not hasattr(ctxcomp, "load_compressor"):
        pytest.skip("ctxcomp.load_compressor not available yet")
    from evals.longbench.methods import make_method

    tok = get_tokenizer("cl100k_base")
    m = make_method(f"ctxcomp:{tiny_classifier_dir}")
    item = Item("hotpotqa", "h", TEXT, "What costs 9 dollars?", ["item 3"])
    doc = ctxcomp.Document(TEXT, {"item": item})
    out = m.compress(doc, target_tokens=150)
    assert tok.count(out.text) <= 150 and out.text and out.config_hash == m.config_hash
    q = make_method(f"ctxcomp+q:{tiny_classifier_dir}")
    out = q.compress(doc, target_tokens=150, question=item.input)
    assert tok.count(out.text) <= 150 and out.question_aware


def test_llmlingua2_symlink_name(tiny_classifier_dir, tmp_path, monkeypatch):
    from evals.longbench.models import llmlingua2_compatible_dir

    monkeypatch.setenv("CTXCOMP_CACHE", str(tmp_path))
    link = llmlingua2_compatible_dir(tiny_classifier_dir)
    assert "bert-base-multilingual-cased" in link and os.path.realpath(link) == os.path.realpath(
        tiny_classifier_dir
    )
    assert llmlingua2_compatible_dir(link) == link
    assert llmlingua2_compatible_dir(tiny_classifier_dir) == link  # stable


def test_legacy_cache_wrapper(tiny_lm_dir):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from evals.longbench.methods import _patch_legacy_cache

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    _patch_legacy_cache(model)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        full = model(ids).logits
        first = model(ids[:, :3], use_cache=True)
        pkv = first.past_key_values
        assert isinstance(pkv, tuple) and len(pkv) == 2 and len(pkv[0]) == 2  # (k, v) per layer
        assert pkv[0][0].shape[2] == 3  # llmlingua reads past_key_values[0][0].shape[2]
        step = model(ids[:, 3:], past_key_values=pkv, use_cache=True)
    assert torch.allclose(step.logits[0, -1], full[0, -1], atol=1e-4)
