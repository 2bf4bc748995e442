"""Tiny random-weight vision-language models built from configs (no downloads), shared by
the vision tests. Text weights are scaled up so greedy decoding produces varied tokens."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
tr = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _sharpen(lm: Any) -> None:
    with torch.no_grad():
        for p in lm.parameters():
            if p.dim() > 1:
                p.mul_(8.0)


def tiny_llava(
    vision: str = "clip", strategy: str = "default", layers: int = 4, seed: int = 0
) -> Any:
    torch.manual_seed(seed)
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
    if vision == "clip":
        vc = tr.CLIPVisionConfig(image_size=56, patch_size=14, **common)
    else:
        vc = tr.SiglipVisionConfig(image_size=56, patch_size=14, **common)
    tc = tr.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=100, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    cfg = tr.LlavaConfig(
        vision_config=vc, text_config=tc, image_token_id=99, projector_hidden_act="gelu",
        vision_feature_layer=-2, vision_feature_select_strategy=strategy,
    )  # fmt: skip
    m = tr.LlavaForConditionalGeneration(cfg).eval()
    _sharpen(m.model.language_model)
    return m


def tiny_qwen2vl(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    cfg = tr.Qwen2VLConfig(
        vision_config=dict(
            depth=2, embed_dim=32, hidden_size=48, num_heads=4, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, in_channels=3, mlp_ratio=2,
        ),
        text_config=dict(
            hidden_size=48, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=120, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 3]},
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ),
        image_token_id=110, video_token_id=111, vision_start_token_id=112, vision_end_token_id=113,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    m = tr.Qwen2VLForConditionalGeneration(cfg).eval()
    _sharpen(m.model.language_model)
    return m


def tiny_onevision(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    vc = tr.SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=28, patch_size=14,
    )  # fmt: skip
    tc = tr.Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=100, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    cfg = tr.LlavaOnevisionConfig(
        vision_config=vc, text_config=tc, image_token_id=99, video_token_id=98,
        image_grid_pinpoints=[[28, 56], [56, 28], [56, 56]], vision_feature_layer=-1,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
    )  # fmt: skip
    m = tr.LlavaOnevisionForConditionalGeneration(cfg).eval()
    _sharpen(m.model.language_model)
    return m


@pytest.fixture(scope="module")
def llava() -> Any:
    return tiny_llava()


@pytest.fixture(scope="module")
def qwen2vl() -> Any:
    return tiny_qwen2vl()


@pytest.fixture(scope="module")
def onevision() -> Any:
    return tiny_onevision()


@pytest.fixture(scope="module")
def make_llava() -> Any:
    """The tiny-LLaVA builder, for tests that need a variant (a SigLIP tower, say)."""
    return tiny_llava
