"""Tiny random-weight models and a tiny Qwen-style tiktoken vocabulary for the C3 tests."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

MERGES = [b"th", b"he", b"the", b"in", b"an", b"er", b"on", b" t", b" the", b"ed", b"nd", b"and"]


def write_tiktoken(path: Path) -> dict[bytes, int]:
    """A byte-level vocabulary (256 bytes + a few merges) in tiktoken's file format."""
    ranks = {bytes([i]): i for i in range(256)}
    for m in MERGES:
        ranks[m] = len(ranks)
    lines = [f"{base64.b64encode(t).decode()} {r}" for t, r in ranks.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ranks


def tiny_lm(kind: str = "qwen2", hidden: int = 32, vocab: int = 512, seed: int = 0) -> Any:
    """A 2-layer causal LM with random weights (Qwen2 or Llama)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    kw: dict[str, Any] = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**kw))
    elif kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kw))
    else:
        raise ValueError(kind)
    return model.eval()
