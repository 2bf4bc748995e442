"""C3's encoder module and checkpoint layout on tiny random Qwen2/Llama models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cascade_helpers import tiny_lm

import ctxcomp
from ctxcomp.latent.cascade.layout import (
    ENCODER_DIR,
    EXT,
    PROJ_W,
    QUERY_KEY,
    build,
    check_decoder,
    load_c3,
    save_c3,
)
from ctxcomp.latent.cascade.model import CascadeEncoder
from ctxcomp.latent.cascade.template import C3, COMPACT
from ctxcomp.latent.cascade.tokenizer import QWEN_SPECIAL

TEXTS = ["the cat and the hat", "on and on the thing went", "x"]


def batch(tok: Any, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    n = max(len(x) for x in ids)
    out = torch.zeros(len(ids), n, dtype=torch.long)
    mask = torch.zeros(len(ids), n, dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return out, mask


def test_tiktoken_conversion_matches_tiktoken(tiktoken_file: Path, tiny_tok: Any) -> None:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from ctxcomp.latent.cascade.tokenizer import QWEN_PATTERN

    ranks = load_tiktoken_bpe(str(tiktoken_file))
    special = {t: len(ranks) + i for i, t in enumerate(QWEN_SPECIAL)}
    ref = tiktoken.Encoding(
        "tiny-qwen", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens=special
    )
    for text in [*TEXTS, "The theme, and then 42 ends.\n\n  the end", "<img>ab</img><imgpad>"]:
        got = tiny_tok(text, add_special_tokens=False)["input_ids"]
        assert got == ref.encode(text, allowed_special="all"), text
        assert tiny_tok.decode(got) == text
    # C3's ids: <img> </img> <imgpad> follow the 208 chat/extra tokens and 6 tags
    img = tiny_tok.convert_tokens_to_ids(["<img>", "</img>", "<imgpad>"])
    assert img == [len(ranks) + 214, len(ranks) + 215, len(ranks) + 216]


def test_encoder_shapes_and_padding_invariance(tiny_c3: Any, tiny_tok: Any) -> None:
    enc: CascadeEncoder = tiny_c3.encoder
    ids, mask = batch(tiny_tok, TEXTS)
    with torch.no_grad():
        lat = enc(ids, mask)
        assert lat.shape == (3, 4, 48)
        for i, t in enumerate(TEXTS):  # alone == inside a padded batch
            one = enc(*batch(tiny_tok, [t]))
            torch.testing.assert_close(one[0], lat[i], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lat[0], lat[1])  # the context matters
    assert enc.block_tokens == 1 + 4 + 1  # <img> is one token in the Qwen vocabulary


def test_encoder_input_layout(tiny_c3: Any, tiny_tok: Any) -> None:
    enc: CascadeEncoder = tiny_c3.encoder
    ids, mask = batch(tiny_tok, TEXTS[:2])
    x, attn, is_query = enc.encoder_inputs(ids, mask)
    emb = enc.encoder.get_input_embeddings()
    n0 = int(mask[0].sum())
    img, end = tiny_tok.convert_tokens_to_ids(["<img>", "</img>"])
    torch.testing.assert_close(x[0, :n0], emb(ids[0, :n0]))
    torch.testing.assert_close(x[0, n0], emb.weight[img])
    torch.testing.assert_close(x[0, n0 + 1 : n0 + 5], enc.query.weight)
    torch.testing.assert_close(x[0, n0 + 5], emb.weight[end])
    assert is_query[0].nonzero().flatten().tolist() == list(range(n0 + 1, n0 + 5))
    assert int(attn[0].sum()) == n0 + 6 and int(attn[1].sum()) == int(mask[1].sum()) + 6


def test_bad_encoder_inputs(tiny_c3: Any) -> None:
    enc = tiny_c3.encoder
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ctxcomp.InputError, match="right-padded"):
        enc(ids, torch.tensor([[0, 1, 1]]))
    with pytest.raises(ctxcomp.InputError, match="at least one token"):
        enc(ids, torch.tensor([[0, 0, 0]]))
    with pytest.raises(ctxcomp.InputError, match=r"\[batch, tokens\]"):
        enc(ids[0], torch.tensor([1, 1, 1]))
    with pytest.raises(ctxcomp.InputError, match="num_latents"):
        CascadeEncoder(tiny_lm(), num_latents=0, out_dim=8)
    with pytest.raises(ctxcomp.InputError, match="outside the encoder's vocabulary"):
        CascadeEncoder(tiny_lm(), num_latents=2, out_dim=8, start_ids=[10_000])


def test_projector_dim_checked_against_decoder(tiny_c3: Any, tiny_tok: Any) -> None:
    with pytest.raises(ctxcomp.InputError, match=r"projector writes 48-d rows .* 64 dimensions"):
        check_decoder(tiny_c3.encoder, tiny_lm("llama", 64))
    with pytest.raises(ctxcomp.InputError, match="projector writes 48-d"):
        type(tiny_c3)(tiny_c3.encoder, tiny_lm("qwen2", 32), tiny_tok, tiny_tok, C3, 16)


def _outputs(model: Any, tok: Any) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = batch(tok, TEXTS)
    with torch.no_grad():
        lat = model.encoder(ids, mask)
        logits = model.decoder(input_ids=ids, attention_mask=mask).logits
    return lat, logits


@pytest.mark.parametrize(
    ("enc_kind", "dec_kind", "shard"),
    [("qwen2", "qwen2", None), ("llama", "llama", "60KB"), ("qwen2", "llama", None)],
)
def test_layout_round_trip(
    tmp_path: Path, tiny_tok: Any, enc_kind: str, dec_kind: str, shard: str | None
) -> None:
    model = build(
        tiny_lm(enc_kind, 32, seed=3),
        tiny_lm(dec_kind, 48, seed=4),
        tiny_tok,
        num_latents=4,
        template=COMPACT,
        chunk_tokens=24,
    )
    with torch.no_grad():  # a trained-looking projector, not the fresh init
        model.encoder.projector.bias.normal_()
    out = save_c3(model, tmp_path / "c3", max_shard_size=shard)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "C3" and cfg["latent_token_len"] == 4
    assert cfg["contexts_compression_llm_hidden_size"] == 32 and cfg["hidden_size"] == 48
    assert cfg["im_start_token"] == tiny_tok.convert_tokens_to_ids("<img>")
    assert cfg[EXT]["decoder_model_type"] == dec_kind
    assert (out / ENCODER_DIR / "config.json").is_file()
    if shard:
        assert (out / "model.safetensors.index.json").is_file()
    loaded = load_c3(out, device="cpu")
    assert loaded.template == COMPACT and loaded.chunk_tokens == 24
    assert type(loaded.decoder) is type(model.decoder)
    for a, b in zip(_outputs(model, tiny_tok), _outputs(loaded, tiny_tok)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_loads_the_released_layout(tmp_path: Path, tiktoken_file: Path, tiny_tok: Any) -> None:
    """As C3 ships it: no ctxcomp key in config.json, the tokenizer as qwen.tiktoken only."""
    model = build(
        tiny_lm("qwen2", 32, seed=5), tiny_lm("qwen2", 48, seed=6), tiny_tok, num_latents=4
    )
    out = save_c3(model, tmp_path / "c3")
    cfg = json.loads((out / "config.json").read_text())
    del cfg[EXT]
    cfg["auto_map"] = {"AutoModel": "modeling_C3.C3QwenForCausalLM"}
    (out / "config.json").write_text(json.dumps(cfg))
    for d in (out, out / ENCODER_DIR):
        for f in d.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
                f.unlink()
    (out / "qwen.tiktoken").write_bytes(tiktoken_file.read_bytes())
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "QWenTokenizer",
                "auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]},
            }
        )
    )
    loaded = load_c3(out, device="cpu", dtype="float32")
    assert loaded.template == C3 and loaded.source == str(out)
    assert loaded.encoder.start_ids.tolist() == [cfg["im_start_token"]]
    assert loaded.encoder.end_ids.tolist() == [cfg["im_end_token"]]
    assert loaded.chunk_tokens == 512 - loaded.encoder.block_tokens  # the encoder's window
    for a, b in zip(_outputs(model, tiny_tok), _outputs(loaded, loaded.encoder_tokenizer)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dtype_selection(tmp_path: Path, tiny_c3: Any) -> None:
    out = save_c3(tiny_c3, tmp_path / "c3")
    m = load_c3(out, device="cpu", dtype="bfloat16")
    assert m.encoder.query.weight.dtype == torch.bfloat16
    assert next(m.decoder.parameters()).dtype == torch.bfloat16
    with pytest.raises(ctxcomp.InputError, match="unknown dtype"):
        load_c3(out, device="cpu", dtype="float99")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_load(tmp_path: Path, tiny_c3: Any) -> None:
    m = load_c3(save_c3(tiny_c3, tmp_path / "c3"), device="cuda")
    assert m.encoder.query.weight.is_cuda and next(m.decoder.parameters()).is_cuda


def test_load_errors_name_the_problem(tmp_path: Path, tiny_c3: Any) -> None:
    with pytest.raises(ctxcomp.ModelLoadError, match="does not exist"):
        load_c3(tmp_path / "nope")
    out = save_c3(tiny_c3, tmp_path / "c3")
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "model_type": "qwen2"}))
    with pytest.raises(ctxcomp.ModelLoadError, match="not a C3 checkpoint"):
        load_c3(out, device="cpu")
    cfg_path.write_text(json.dumps({**cfg, "latent_token_len": 5}))
    with pytest.raises(
        ctxcomp.ModelLoadError, match=rf"{QUERY_KEY} is \(4, 32\), config says \(5, 32\)"
    ):
        load_c3(out, device="cpu")
    cfg_path.write_text(json.dumps(cfg))
    (out / ENCODER_DIR / "config.json").rename(out / "moved.json")
    with pytest.raises(ctxcomp.ModelLoadError, match="no encoder checkpoint in llm1/"):
        load_c3(out, device="cpu")
    (out / "moved.json").rename(out / ENCODER_DIR / "config.json")
    from safetensors.torch import load_file, save_file

    f = out / "model.safetensors"
    t = load_file(str(f))
    del t[PROJ_W]
    save_file(t, str(f), metadata={"format": "pt"})
    with pytest.raises(ctxcomp.ModelLoadError, match="missing the C3 weights"):
        load_c3(out, device="cpu")
