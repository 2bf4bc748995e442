import numpy as np
import pytest

from ctxcomp import InputError, get_tokenizer


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_tiktoken_offline_and_offsets(name):
    r = get_tokenizer(name)
    text = "Hello wörld 北京欢迎你 — emoji 🙂 test.\n\nnew <|endoftext|> line"
    ids = r.encode(text)
    assert r.decode(ids) == text
    assert r.count(text) == len(ids)
    starts = r.token_starts(text)
    ref = r._enc.decode_with_offsets(ids)[1]
    assert starts.tolist() == ref
    assert np.all(np.diff(starts) >= 0)


def test_unknown_encoding():
    with pytest.raises(InputError, match="unknown reader encoding 'nope'"):
        get_tokenizer("nope")
    with pytest.raises(InputError):
        get_tokenizer("")


def test_hf_reader(minilm_path):
    r = get_tokenizer(f"hf:{minilm_path}")
    text = "Hello there, general Kenobi."
    assert r.count(text) == len(r.encode(text)) > 0
    assert r.token_starts(text)[0] == 0


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_counter_is_exact_on_similar_texts(name, essays):
    """The memoising counter of budget searches equals a full count on every text, including
    texts that share most paragraphs with ones counted before and texts with awkward breaks."""
    import random

    r = get_tokenizer(name)
    count = r.counter()
    rng = random.Random(7)
    pieces = [
        "word",
        " word",
        "\n",
        "\r\n",
        "\n\n",
        " \n",
        ".\n",
        "?\n\n",
        "'s",
        "'S",
        "\nB",
        "\tx",
        "123",
        "1234567",
        "北京",
        "欢迎\n你",
        "🙂",
        "  ",
        "—",
        "Ünïcode",
        "a\u0301",
        "\nÄ",
        ".\r\nT",
        ". The",
        ", and",
        "; x",
        ":  Y",
        "?! Z",
        ". 's",
        "., a",
        " . b",
        ".\u00a0c",
        ". 12",
        "end.Next",
    ]
    texts = []
    for _ in range(300):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(0, 60))))
    base = next(iter(essays.values()))[:20_000].split("\n")
    for _ in range(30):  # probes of one search: a few lines dropped or shortened each time
        lines = [ln if rng.random() > 0.05 else ln[: len(ln) // 2] for ln in base]
        texts.append("\n".join(ln for ln in lines if rng.random() > 0.02))
    words = "\n".join(base).split(" ")
    for _ in range(30):  # word-level probes: clauses change by a word or two
        texts.append(" ".join(w for w in words if rng.random() > 0.05))
    for t in texts:
        assert count(t) == r.count(t), repr(t[:80])
