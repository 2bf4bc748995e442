"""Pruning inside tiny random-config LLaVA, LLaVA-OneVision and Qwen2-VL models: the LLM's
sequence gets shorter, generation runs, and with nothing pruned it equals the model's own
generation; Qwen2-VL's kept tokens keep their M-RoPE positions; FastV shortens the cache
of the layers after K only; merged tokens get proportional attention (each key weighs its
size) in the prefill and the decoding steps alike."""

from __future__ import annotations

from typing import Any

import pytest

import ctxcomp

torch = pytest.importorskip("torch")

from ctxcomp.vision.hf.prop_attn import SizeBias  # noqa: E402
from ctxcomp.vision.hf.vlm import PrunedVLM  # noqa: E402

GEN = dict(max_new_tokens=5, do_sample=False)


def llava_inputs(batch: int = 1, pad: bool = False, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    row = [1, 5, 6] + [99] * 16 + [7, 8, 9, 10]
    ids = torch.tensor([row] * batch)
    mask = torch.ones_like(ids)
    if pad:  # a left-padded second row with a shorter text
        ids[1, :2] = 0
        mask[1, :2] = 0
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.randn(batch, 3, 56, 56, generator=g),
    }


def qwen_inputs() -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    row0 = [1, 5, 112] + [110] * 16 + [113, 7, 8, 9]
    row1 = [1, 112] + [110] * 8 + [113, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    width = max(len(row0), len(row1))
    ids = torch.tensor([[0] * (width - len(r)) + r for r in (row0, row1)])
    mask = (ids != 0).long()
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.randn(64 + 32, 3 * 2 * 14 * 14, generator=g),
        "image_grid_thw": torch.tensor([[1, 8, 8], [1, 4, 8]]),
        "mm_token_type_ids": (ids == 110).int(),
    }


@pytest.mark.parametrize("method", ["random", "pooling", "divprune", "vtc-cls", "tome", "fastv"])
def test_llava_nothing_pruned_equals_the_model(llava: Any, method: str) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    ref = llava.generate(**inputs, **GEN)
    out = PrunedVLM(llava, method, ratio=1.0).generate(**inputs, **GEN)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("method", ["random", "pooling", "divprune", "vtc-cls", "tome"])
def test_llava_pruning_shortens_the_llm_sequence(llava: Any, method: str) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    vlm = PrunedVLM(llava, method, ratio=0.5)
    prep = vlm.prepare(**inputs)
    n_img = 16
    assert [r.original_tokens for r in prep.results] == [n_img, n_img]
    kept = prep.results[0].compressed_tokens
    assert kept <= 8
    assert prep.kwargs["inputs_embeds"].shape[1] == inputs["input_ids"].shape[1] - (n_img - kept)
    assert int((prep.kwargs["input_ids"] == 99).sum()) == sum(
        r.compressed_tokens for r in prep.results
    )
    out = llava(**{k: v for k, v in prep.kwargs.items() if k != "input_ids"}, use_cache=True)
    assert all(
        layer.keys.shape[2] == prep.kwargs["inputs_embeds"].shape[1] for layer in out.cache.layers
    )
    gen = vlm.generate(**inputs, **GEN)
    assert gen.shape == (2, inputs["input_ids"].shape[1] + GEN["max_new_tokens"])
    assert torch.equal(gen[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    # the kept image tokens sit where the pruner put them, in order, as projected features
    feats = llava.model.get_image_features(pixel_values=inputs["pixel_values"][:1]).pooler_output[0]
    r = prep.results[0]
    emb = prep.kwargs["inputs_embeds"][0, 3 : 3 + r.compressed_tokens]
    torch.testing.assert_close(emb, r.features.to(emb))
    if method != "tome":  # post-projector methods: rows are (means of) projected features
        torch.testing.assert_close(r.features, r.apply(feats))


@pytest.mark.parametrize("method", ["random", "divprune", "vtc-cls"])
def test_llava_recycling_keeps_the_budget_and_every_token(llava: Any, method: str) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    vlm = PrunedVLM(llava, method, ratio=0.5, recycle="merge")
    prep = vlm.prepare(**inputs)
    feats = llava.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    for b, r in enumerate(prep.results):
        assert r.compressed_tokens == 8 and r.sizes.sum() == 16 and r.dropped.size == 0
        torch.testing.assert_close(r.features, r.apply(feats[b]))  # group means
    assert int((prep.kwargs["input_ids"] == 99).sum()) == 16
    gen = vlm.generate(**inputs, **GEN)
    assert gen.shape == (2, inputs["input_ids"].shape[1] + GEN["max_new_tokens"])
    with pytest.raises(ctxcomp.InputError, match="cannot recycle"):
        PrunedVLM(llava, "fastv", ratio=0.5, recycle="merge")(**inputs)


def test_llava_generation_is_deterministic(llava: Any) -> None:
    inputs = llava_inputs()
    a = PrunedVLM(llava, "divprune", ratio=0.25).generate(**inputs, **GEN)
    b = PrunedVLM(llava, "divprune", ratio=0.25).generate(**inputs, **GEN)
    assert torch.equal(a, b)


def test_fastv_shortens_only_the_layers_after_k(llava: Any) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    vlm = PrunedVLM(llava, "fastv", ratio=0.25, layer=2)
    out = vlm(**inputs, use_cache=True)
    lengths = [layer.keys.shape[2] for layer in out.cache.layers]
    full = inputs["input_ids"].shape[1]
    assert lengths == [full, full, full - 12, full - 12]
    assert [r.compressed_tokens for r in vlm.results] == [4, 4]
    # the first generated token is the pruned forward's argmax
    gen = vlm.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert torch.equal(gen[:, full], out.logits[:, -1].argmax(-1))
    assert gen.shape == (2, full + 3)


def test_fastv_rows_must_keep_equal_counts(qwen2vl: Any) -> None:
    with pytest.raises(ctxcomp.InputError, match="same number of tokens in every row"):
        PrunedVLM(qwen2vl, "fastv", ratio=0.5).generate(**qwen_inputs(), **GEN)
    with pytest.raises(ctxcomp.InputError, match="below the 4 LLM layers"):
        inputs = qwen_inputs()
        PrunedVLM(qwen2vl, "fastv", ratio=0.5, layer=4)(**inputs)


@pytest.mark.parametrize("method", ["random", "pooling", "divprune", "fastv"])
def test_qwen2vl_nothing_pruned_equals_the_model(qwen2vl: Any, method: str) -> None:
    inputs = qwen_inputs()
    ref = qwen2vl.generate(**inputs, **GEN)
    if method == "fastv":  # one row at a time (FastV keeps equal counts per row)
        for b in range(2):
            one = {
                k: v[b : b + 1] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v
                for k, v in inputs.items()
            }
            one["pixel_values"] = (
                inputs["pixel_values"][:64] if b == 0 else inputs["pixel_values"][64:]
            )
            one["image_grid_thw"] = inputs["image_grid_thw"][b : b + 1]
            ref1 = qwen2vl.generate(**one, **GEN)
            assert torch.equal(PrunedVLM(qwen2vl, method, ratio=1.0).generate(**one, **GEN), ref1)
        return
    out = PrunedVLM(qwen2vl, method, ratio=1.0).generate(**inputs, **GEN)
    assert torch.equal(out, ref)


def test_qwen2vl_keeps_mrope_positions(qwen2vl: Any) -> None:
    inputs = qwen_inputs()
    vlm = PrunedVLM(qwen2vl, "divprune", ratio=0.5)
    prep = vlm.prepare(**inputs)
    assert [r.compressed_tokens for r in prep.results] == [8, 4]
    pos = prep.kwargs["position_ids"]
    mask = prep.kwargs["attention_mask"]
    assert pos.shape == (4, 2, prep.kwargs["input_ids"].shape[1])
    orig, _ = qwen2vl.model.get_rope_index(
        inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"], attention_mask=inputs["attention_mask"],
    )  # fmt: skip
    src = prep.source
    for b in range(2):
        live = (src[b] >= 0) & (mask[b] == 1)
        assert torch.equal(pos[1:, b, live], orig[:, b, src[b, live]])
        assert torch.equal(pos[0, b, live], torch.arange(int(mask[b].sum())))  # text rows compact
    # the kept tokens' (t, h, w) are their grid cells: row 0's image is 8x8 patches -> 4x4 tokens
    r = prep.results[0]
    cells = r.positions()
    img = pos[1:, 0, (prep.kwargs["input_ids"][0] == 110)]
    assert torch.equal(img[1] - img[1].min(), torch.as_tensor(cells[:, 0]))
    assert torch.equal(img[2] - img[2].min(), torch.as_tensor(cells[:, 1]))
    out = vlm.generate(**inputs, **GEN)
    assert out.shape[1] == inputs["input_ids"].shape[1] + GEN["max_new_tokens"]


def test_onevision_prunes_and_protects_newlines(onevision: Any) -> None:
    g = torch.Generator().manual_seed(2)
    pix = torch.randn(1, 5, 3, 28, 28, generator=g)
    sizes = torch.tensor([[56, 56]])
    n = (
        onevision.model.get_image_features(pixel_values=pix, image_sizes=sizes)
        .pooler_output[0]
        .shape[0]
    )
    ids = torch.tensor([[1, 5] + [99] * n + [7, 8]])
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": pix,
        "image_sizes": sizes,
    }
    ref = onevision.generate(**inputs, **GEN)
    assert torch.equal(PrunedVLM(onevision, "divprune", ratio=1.0).generate(**inputs, **GEN), ref)
    vlm = PrunedVLM(onevision, "pooling", ratio=0.5)
    out = vlm.generate(**inputs, **GEN)
    r = vlm.results[0]
    assert r.compressed_tokens <= n // 2 and out.shape[1] == ids.shape[1] + GEN["max_new_tokens"]
    newline = onevision.model.image_newline
    feats = onevision.model.get_image_features(pixel_values=pix, image_sizes=sizes).pooler_output[0]
    nl = torch.nonzero((feats == newline).all(-1)).flatten().tolist()
    assert nl and set(nl) <= set(r.kept.tolist())


def test_unsupported_combinations_are_named(llava: Any, qwen2vl: Any, make_llava: Any) -> None:
    with pytest.raises(ctxcomp.InputError, match="no \\[CLS\\] token"):
        PrunedVLM(qwen2vl, "vtc-cls", ratio=0.5).generate(**qwen_inputs(), **GEN)
    with pytest.raises(ctxcomp.InputError, match="not supported for Qwen2-VL"):
        PrunedVLM(qwen2vl, "tome", ratio=0.5).generate(**qwen_inputs(), **GEN)
    siglip = make_llava(vision="siglip")
    with pytest.raises(ctxcomp.InputError, match="no \\[CLS\\] token"):
        PrunedVLM(siglip, "vtc-cls", ratio=0.5).generate(**llava_inputs(), **GEN)
    with pytest.raises(ctxcomp.InputError, match="is not supported"):
        PrunedVLM(torch.nn.Linear(2, 2), "random", ratio=0.5)
    bad = llava_inputs()
    bad["input_ids"] = bad["input_ids"][:, :10]  # fewer image tokens than features
    with pytest.raises(ctxcomp.InputError, match="image tokens in input_ids"):
        PrunedVLM(llava, "random", ratio=0.5).prepare(**bad)
    with pytest.raises(ctxcomp.BudgetError):
        PrunedVLM(siglip, "random", ratio=2.0)


def test_tome_in_llava_counts_the_real_input_patches() -> None:
    """The tower's config may be for another resolution (DINOv2: 518 px); the merge plan
    follows the pixels actually given (here 56 px: 4x4 patches)."""
    torch.manual_seed(0)
    tr = pytest.importorskip("transformers")
    vc = tr.Dinov2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, mlp_ratio=2,
                         image_size=70, patch_size=14)  # fmt: skip
    tc = tr.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    model = tr.LlavaForConditionalGeneration(
        tr.LlavaConfig(vision_config=vc, text_config=tc, image_token_id=99,
                       vision_feature_layer=-2, vision_feature_select_strategy="default")
    ).eval()  # fmt: skip
    vlm = PrunedVLM(model, "tome", ratio=0.5)
    prep = vlm.prepare(**llava_inputs())
    r = prep.results[0]
    assert (r.original_tokens, r.compressed_tokens, r.grid) == (16, 8, (4, 4))
    assert r.sizes.sum() == 16


# -- proportional attention for merged tokens ------------------------------------------


@pytest.fixture(scope="module")
def eager(make_llava: Any) -> Any:
    m = make_llava()
    m.set_attn_implementation("eager")
    return m


def lm_kwargs(prep: Any) -> dict[str, Any]:
    return {k: v for k, v in prep.kwargs.items() if k != "input_ids"}


def test_attention_weights_scale_with_token_sizes(eager: Any) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    vlm = PrunedVLM(eager, "pooling", ratio=0.25)
    prep = vlm.prepare(**inputs)
    assert prep.sizes is not None and set(prep.sizes.unique().tolist()) == {1.0, 4.0}
    kw = lm_kwargs(prep)
    with torch.inference_mode():
        plain = eager(**kw, output_attentions=True).attentions[0]
        with SizeBias(eager.model.language_model, prep.sizes):
            prop = eager(**kw, output_attentions=True).attentions[0]
    s = prep.sizes[:, None, None, :]
    expect = plain * s / (plain * s).sum(-1, keepdim=True)
    real = prep.kwargs["attention_mask"].bool()  # padded queries attend to nothing real
    torch.testing.assert_close(prop[real[:, None, :, None].expand_as(prop)],
                               expect[real[:, None, :, None].expand_as(prop)],
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_sdpa_matches_eager_and_decoding_matches_the_prefill(llava: Any, eager: Any) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    kwargs: dict[str, Any] = {"ratio": 0.25, "recycle": "merge"}
    sd, ea = PrunedVLM(llava, "divprune", **kwargs), PrunedVLM(eager, "divprune", **kwargs)
    with torch.inference_mode():
        a = sd(**inputs).logits
        b = ea(**inputs).logits
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        plain = PrunedVLM(llava, "divprune", prop_attn=False, **kwargs)(**inputs).logits
        assert not torch.allclose(a, plain, atol=1e-3)  # the bias changes the model's view
        # decoding over the cache sees the same bias as a full forward over prompt + tokens
        gen = sd.generate(**inputs, max_new_tokens=2, do_sample=False)
        prep = sd.prepare(**inputs)
        n = inputs["input_ids"].shape[1]
        assert torch.equal(gen[:, n], a[:, -1].argmax(-1))
        ids = torch.cat([prep.kwargs["input_ids"], gen[:, n : n + 1]], dim=1)
        emb = torch.cat(
            [prep.kwargs["inputs_embeds"], llava.get_input_embeddings()(gen[:, n : n + 1])], 1
        )
        mask = torch.cat([prep.kwargs["attention_mask"], torch.ones_like(gen[:, n : n + 1])], 1)
        sizes = torch.cat([prep.sizes, torch.ones(2, 1)], dim=1)
        with SizeBias(llava.model.language_model, sizes):
            full = llava(inputs_embeds=emb, attention_mask=mask).logits
        assert ids.shape == emb.shape[:2]
        assert torch.equal(gen[:, n + 1], full[:, -1].argmax(-1))


def test_no_merge_no_hooks_and_errors(llava: Any) -> None:
    inputs = llava_inputs(batch=2, pad=True)
    ref = llava.generate(**inputs, **GEN)
    assert torch.equal(PrunedVLM(llava, "pooling", ratio=1.0).generate(**inputs, **GEN), ref)
    with pytest.raises(ctxcomp.InputError, match="positive token counts"):
        SizeBias(llava.model.language_model, torch.zeros(1, 3))
    with pytest.raises(ctxcomp.InputError, match="no decoder layers"):
        SizeBias(torch.nn.Linear(2, 2), torch.ones(1, 3))
